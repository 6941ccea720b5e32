#!/usr/bin/env bash
# The nightly fuzz run of tests/test_fuzz.py: >= 100,000 hypothesis examples in total, in chunks of
# a few minutes (one pytest process each, so a shared machine's lock can be released in between).
# A target's examples are all drawn in one process: hypothesis is derandomized, so two processes
# of the same target would draw the same examples.
#   benchmarks/fuzz_nightly.sh [LOG_DIR]
# Environment: N (examples per target, default 7500), LOADS (per target that loads a backend,
# default 7000), LOCK (a file to flock around each chunk; none by default), PYTHON.
# Counts, rates and the result are in docs/reliability.md ("Hostile files").
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
out=${1:-benchmarks/results/fuzz-nightly}
mkdir -p "$out"
N=${N:-7500}
LOADS=${LOADS:-7000}
# Address space capped at 8 GB: a graph that makes a backend allocate without bound fails here
# instead of waking the machine's OOM killer.
ulimit -v 8000000

chunks=(
    "manifest"
    "coco or yolo or voc_xml or image_files or arrays"
    "onnx_graph_mutations_load"
    "openvino_ir_mutations_load"
    "refused_by_the_graph_check or read_by_the_graph_check"
)
fail=0
start=$(date +%s)
for i in "${!chunks[@]}"; do
    k=${chunks[$i]}
    t0=$(date +%s)
    cmd=(env EDGECV_FUZZ_EXAMPLES="$N" EDGECV_FUZZ_LOAD_EXAMPLES="$LOADS" EDGECV_FUZZ_LAST="$out/last-$i.txt"
        "$py" -m pytest tests/test_fuzz.py -q -p no:cacheprovider -k "$k" --hypothesis-show-statistics)
    if [ -n "${LOCK:-}" ]; then cmd=(flock "$LOCK" "${cmd[@]}"); fi
    nice -n 5 "${cmd[@]}" >"$out/chunk-$i.log" 2>&1
    rc=$?
    [ $rc -eq 0 ] || fail=1
    echo "chunk $i (-k '$k'): exit $rc, $(($(date +%s) - t0)) s: $(tail -n 1 "$out/chunk-$i.log")"
done
echo "all chunks: $(($(date +%s) - start)) s wall, N=$N LOADS=$LOADS, $([ $fail -eq 0 ] && echo 0 failing chunks || echo FAILURES)"
exit $fail

#!/usr/bin/env bash
# Run the TensorRT plan tests on a machine with an NVIDIA GPU and TensorRT 10.x/11.x,
# in one go, and keep the figures: tests/gpu/results.json (or $1) and a JUnit report.
#
#   pip install -e '.[export,eval,quantize,onnxruntime,tensorrt,dev]' tensorrt   # x86-64
#   bash tests/gpu/run.sh [results.json]
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-tests/gpu/results.json}"
export EDGECV_GPU_RESULTS="$out"
python - <<'PY'
from edgecv.runtimes.tensorrt.plans import can_build_here
reason = can_build_here()
if reason:
    raise SystemExit(f"tests/gpu/run.sh: TensorRT plans cannot be built here: {reason}")
PY
python -m pytest tests/gpu tests/test_tensorrt.py -m tensorrt -rA -p no:cacheprovider \
    --junitxml="${out%.json}.junit.xml" "${@:2}"
echo "results: $out"

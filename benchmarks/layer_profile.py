"""Where an OpenVINO graph spends its time, layer by layer: OpenVINO's performance counters
(``PERF_COUNT``) over the same frames for each IR given, summed by kind of work, side by side.

    python benchmarks/layer_profile.py build/bench-speed/<edgecv int8 bundle> <Ultralytics *_int8_openvino_model> \\
        [--runs 30] [--top 12] [--inference-precision auto]

Each model is compiled as edgecv runs it (a static batch of 1, LATENCY hint, threads unpinned) with ``PERF_COUNT`` on,
run ``--runs`` times on one letterboxed frame of the shapes validation split after a warm-up, and
its executed layers are grouped into kinds:

- ``convolution (int8)`` / ``convolution (float)``: convolutions by the precision their kernel ran in;
- ``reorder``: layout and precision conversions the plugin inserted between layers;
- ``float island``: any other layer that ran in f32 or bf16 between quantized ones (element-wise
  work, concatenations, resampling, the decode and DFL);
- ``nms``, ``input`` (the uint8 input's Convert, Transpose and scale), ``other``.

Prints the ms per frame of each kind for each model, the share of its total, and the slowest
layers of each; with ``--json`` also writes them. The CPU's ISA is printed with the figures:
VNNI and AMX change which kernels run, and so which kinds dominate.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np

from edgecv.console import table
from edgecv.cpu import float_precision, isa, model_name
from edgecv.data import shapes
from edgecv.letterbox import Letterbox

KINDS = ("convolution (int8)", "convolution (float)", "reorder", "float island", "nms", "input", "other")


def kind(node_type: str, exec_type: str, name: str, first_conv_seen: bool) -> str:
    """The kind of one executed layer (see the module doc)."""
    t, e = node_type.lower(), exec_type.lower()
    if "convolution" in t:
        return "convolution (int8)" if ("i8" in e or "u8" in e) else "convolution (float)"
    if t == "reorder":
        return "reorder"
    if "nonmaxsuppression" in t or "nms" in t:
        return "nms"
    if not first_conv_seen and t in ("convert", "transpose", "multiply", "subtract", "eltwise", "parameter"):
        return "input"
    if "f32" in e or "bf16" in e or "fp32" in e:
        return "float island"
    return "other"


def xml_of(path: Path) -> Path:
    """The IR of a bundle directory or of a folder with one .xml (Ultralytics' export), or the file."""
    if path.is_file():
        return path
    xmls = sorted(path.glob("*.xml"))
    if len(xmls) != 1:
        raise SystemExit(f"{path}: expected one .xml in the folder, found {len(xmls)}")
    return xmls[0]


def profile(core, xml: Path, frame: np.ndarray, runs: int, precision: str) -> dict:
    """Per kind, the median ms per frame over ``runs``; and the slowest layers."""
    model = core.read_model(str(xml))
    # a static batch of 1, as edgecv's runtime compiles for single frames (a dynamic batch
    # dimension costs the CPU plugin reorders between layers and ran 13-18% slower)
    model.reshape(
        {p.get_any_name(): [1 if d.is_dynamic else d.get_length() for d in p.get_partial_shape()] for p in model.inputs}
    )
    compiled = core.compile_model(
        model,
        "CPU",
        {
            "PERF_COUNT": True,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": precision,
            "ENABLE_CPU_PINNING": False,
        },
    )
    request = compiled.create_infer_request()
    port = compiled.inputs[0]
    shape = [d if d > 0 else 1 for d in port.get_partial_shape().get_min_shape()]
    h, w = (shape[1], shape[2]) if shape[-1] == 3 else (shape[2], shape[3])
    canvas, _ = Letterbox((h, w)).forward(frame[:, :, ::-1])
    x = canvas[None]
    if port.get_element_type().to_string() != "u8":
        x = x.astype(np.float32) / 255
    if shape[-1] != 3:
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    feeds = {port: x}
    for extra in compiled.inputs[1:]:  # edgecv's score floor
        feeds[extra] = np.full([1], 0.25, np.float32)
    for _ in range(5):
        request.infer(feeds)
    per_kind: dict[str, list[float]] = defaultdict(list)
    per_layer: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    totals = []
    for _ in range(runs):
        request.infer(feeds)
        sums: dict[str, float] = defaultdict(float)
        seen_conv = False
        total = 0.0
        for p in request.profiling_info:
            if p.status.name != "EXECUTED":
                continue
            ms = p.real_time.total_seconds() * 1000
            k = kind(p.node_type, p.exec_type, p.node_name, seen_conv)
            seen_conv = seen_conv or k.startswith("convolution")
            sums[k] += ms
            total += ms
            per_layer[(p.node_name, p.node_type, p.exec_type)].append(ms)
        totals.append(total)
        for k in KINDS:
            per_kind[k].append(sums.get(k, 0.0))
    slow = sorted(((statistics.median(v), key) for key, v in per_layer.items()), reverse=True)
    return {
        "xml": str(xml),
        "precision": compiled.get_property("INFERENCE_PRECISION_HINT").to_string(),
        "total_ms": statistics.median(totals),
        "kinds": {k: statistics.median(v) for k, v in per_kind.items()},
        "slowest": [{"ms": ms, "name": n, "type": t, "exec": e} for ms, (n, t, e) in slow],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="edgecv openvino bundles, Ultralytics *_openvino_model folders, or .xml")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--top", type=int, default=12, help="slowest layers listed per model")
    ap.add_argument(
        "--inference-precision", default="auto", help="auto (bf16 where native, as edgecv INT8 bundles), f32, bf16"
    )
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    import openvino as ov

    core = ov.Core()
    precision = float_precision() if args.inference_precision == "auto" else args.inference_precision
    frame = shapes.render(shapes.SPLIT_SEEDS["val"], 0).image
    results = [profile(core, xml_of(Path(m)), frame, args.runs, precision) for m in args.models]
    print(f"{model_name()}, ISA {' '.join(isa()) or 'unknown'}; float parts asked in {precision}; {args.runs} runs")
    head = ("kind", *(f"{Path(r['xml']).parent.name} ms (share)" for r in results))
    body = [
        (k, *(f"{r['kinds'][k]:.2f} ({r['kinds'][k] / r['total_ms']:.0%})" for r in results))
        for k in KINDS
        if any(r["kinds"][k] > 0 for r in results)
    ]
    body.append(("total", *(f"{r['total_ms']:.2f}" for r in results)))
    print(table(head, body, left=1))
    for r in results:
        print(f"\nslowest layers of {Path(r['xml']).parent.name} (ran {r['precision']}):")
        print(
            table(
                ("ms", "layer", "type", "kernel"),
                [(f"{s['ms']:.3f}", s["name"][:60], s["type"], s["exec"]) for s in r["slowest"][: args.top]],
                left=4,
            )
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"isa": isa(), "cpu": model_name(), "results": results}, indent=1))


if __name__ == "__main__":
    main()

"""``edgecv demo``: the main job on the bundled default detector, end to end.

Exports edgecv-tiny to every CPU target, runs each bundle and the PyTorch source
over the shapes validation split, and returns one row per model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from .console import points, table
from .data import shapes
from .datasets import load_dataset
from .harness import run_dataset
from .runtimes import is_available, load

DEMO_TARGETS = ("onnxruntime", "openvino")


def run_demo(
    out_dir: str | os.PathLike = "build/demo",
    count: int = 200,
    targets: Sequence[str] = DEMO_TARGETS,
    say: Callable[[str], None] = print,
    progress: bool = True,
) -> list[dict]:
    """Export, validate and time the default detector; one dict per row of the table."""
    from .export import default_source, export, reference

    out = Path(out_dir)
    say(f"writing {count} validation images of the shapes set to {out / 'data'}")
    images_dir, ann = shapes.write_coco(out / "data", "val", count)
    dataset = load_dataset(ann, images_dir)
    src = default_source()
    rows = []
    say("evaluating the PyTorch source (torch reference backend)")
    ref = reference(src)
    res = run_dataset(ref, dataset, name="torch", progress=progress)
    rows.append(_row("torch (source)", "fp32", res, None))
    base = res.metrics.map
    for target in targets:
        if not is_available(target):
            say(f"skipping {target}: not installed (pip install 'edgecv[{target}]')")
            continue
        bundle = export(src, target, out_dir=out / "bundles", progress=lambda m: say(f"  {m}"))
        with load(bundle) as det:
            res = run_dataset(det, dataset, name=target, progress=progress)
        rows.append(_row(target, "fp32", res, bundle, base))
    return rows


def _row(target: str, precision: str, res, bundle: Path | None, base: float | None = None) -> dict:
    size = None
    if bundle is not None:
        from .bundle import Bundle

        size = Bundle.open(bundle, verify=False).size_bytes()
    m = res.metrics.stats
    return {
        "target": target,
        "precision": precision,
        "map": m["map"],
        "map50": m["map50"],
        "delta_map": None if base is None else m["map"] - base,
        "median_ms": res.median_ms,
        "size_bytes": size,
        "bundle": str(bundle) if bundle else None,
    }


def format_table(rows: list[dict]) -> str:
    """The demo table as aligned text, mAP in points (x 100) as ``val`` and ``compare`` print it;
    the rows themselves keep fractions, as the manifest's validation does."""
    head = ("target", "precision", "mAP50-95", "mAP50", "Δ points vs source", "median ms/img", "bundle MB")
    body = [
        (
            r["target"],
            r["precision"],
            points(r["map"]),
            points(r["map50"]),
            "—" if r["delta_map"] is None else f"{r['delta_map'] * 100:+.2f}",
            f"{r['median_ms']:.2f}",
            "—" if r["size_bytes"] is None else f"{r['size_bytes'] / 1e6:.2f}",
        )
        for r in rows
    ]
    return table(head, body, left=2)

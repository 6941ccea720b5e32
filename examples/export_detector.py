"""Export a detector to an INT8 OpenVINO bundle and prove it finds what its source finds.

    python examples/export_detector.py [MODEL] [--out build/examples]

MODEL is any source edgecv reads (an edgecv checkpoint, an Ultralytics YOLO .pt, TorchScript,
ONNX); without it, the bundled default detector. The calibration and validation images are
the shapes data set, written here: use a few hundred of your own images and their COCO json
instead. Needs pip install "edgecv[export,openvino,quantize,eval]".
"""

from __future__ import annotations

import argparse
import sys

from edgecv.data.shapes import write_coco
from edgecv.errors import EdgecvError
from edgecv.evaluation import compare_table, load_dataset
from edgecv.pipeline import export_checked


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Export a detector to an INT8 OpenVINO bundle and validate it.")
    ap.add_argument("model", nargs="?", help="the source model (default: edgecv-tiny)")
    ap.add_argument("--out", default="build/examples", help="where the data and the bundle go")
    ap.add_argument("--count", type=int, default=100, help="validation images")
    ap.add_argument("--max-drop", type=float, default=1.0, help="mAP50-95 points the bundle may lose")
    a = ap.parse_args(argv)
    calib, _ = write_coco(f"{a.out}/shapes-train", "train", count=64)  # images to calibrate INT8 on
    images, labels = write_coco(f"{a.out}/shapes-val", "val", count=a.count)
    try:
        bundle, result, failures = export_checked(
            a.model,
            "openvino",
            load_dataset(labels, images=images),
            validate=True,
            max_drop=a.max_drop,
            out_dir=a.out,
            precision="int8",
            calib=calib,
            say=print,
        )
    except EdgecvError as e:  # what was wrong and what to do, without a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    if result is not None:
        print(compare_table(result))
    print(f"bundle: {bundle}" + "".join(f"\nfailed: {f}" for f in failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

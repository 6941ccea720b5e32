"""A device app: run a bundle over images and print what it finds (drawn with --save DIR).

    python examples/device_app.py BUNDLE IMAGE... [--save DIR]

Needs only the runtime: pip install "edgecv[openvino]" (or [onnxruntime], or [tensorrt]).
"""

import argparse
from pathlib import Path

import cv2

import edgecv
from edgecv.draw import draw_detections

ap = argparse.ArgumentParser(description="Run a bundle over images.")
ap.add_argument("bundle")
ap.add_argument("images", nargs="+")
ap.add_argument("--save", type=Path, help="folder for the images with their boxes drawn")
a = ap.parse_args()
with edgecv.load(a.bundle) as det:  # conf 0.25 by default; det(image, conf=...) to change it
    for path, dets in zip(a.images, det.stream(a.images)):
        print(Path(path).name, ", ".join(f"{n} {s:.2f}" for n, s in zip(dets.labels, dets.scores)) or "-")
        if a.save:
            a.save.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(a.save / Path(path).name), draw_detections(cv2.imread(path), dets))

"""Lung and opacity masks of DICOM slices, computed by the Python reference (training/lung.py), as JSON on
stdout - what tests/model/lung.test.ts compares the TypeScript twin against.

Usage: /usr/bin/python3 training/lung_dump.py [--thickness MM] FILE.dcm [...]
  --thickness  take this SliceThickness instead of the file's (the thick-slice ground-glass opening)
Per file: {file, sopInstanceUid, width, height (working grid), pxMm, masks: {lung, opacity, high} as base64 of
numpy.packbits (row-major, MSB first), areas: {total, s0, s1} in mm², cropBox [y0, y1, x0, x1], cropUsed}.
"""
from __future__ import annotations

import base64
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from lung import analyse_slice  # noqa: E402
from preprocess import PREPROCESSING, lung_crop_box, load_hu, pixel_spacing, slice_thickness  # noqa: E402


def pack(m: np.ndarray) -> str:
    return base64.b64encode(np.packbits(m.astype(np.uint8).ravel()).tobytes()).decode("ascii")


def main() -> None:
    out = []
    args = sys.argv[1:]
    thickness = None
    if args[:1] == ["--thickness"]:
        thickness, args = float(args[1]), args[2:]
    for f in args:
        hu, ds = load_hu(f)
        sp = pixel_spacing(ds)
        a = analyse_slice(hu, sp, thickness_mm=thickness if thickness is not None else slice_thickness(ds))
        box, used = lung_crop_box(hu, "hu", sp, PREPROCESSING, a)
        h, w = a["lung"].shape
        out.append({
            "file": f, "sopInstanceUid": str(ds.SOPInstanceUID), "width": int(w), "height": int(h), "pxMm": list(a["px"]),
            "masks": {k: pack(a[k]) for k in ("lung", "opacity", "high")},
            "areas": {k: a[k] for k in ("total", "s0", "s1")},
            "cropBox": list(box), "cropUsed": used,
        })
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

"""Distribution features of a series by the Python reference (training/pattern.py on the masks of lung.py), as
JSON on stdout - what tests/model/pattern-twin.test.ts compares the TypeScript twin against.

Usage: echo '{"files": [...], "positions": [...], "iop": [...], "spacingMm": 2.0}' | /usr/bin/python3 training/pattern_dump.py
files in scored order (superior first), positions in mm along the slice normal (the node's), iop of the series.
Output: {slices: [per-slice summary without runs, plus "runs": number of runs], features, category, criteria, rule}.
"""
from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from lung import analyse_slice  # noqa: E402
from pattern import PATTERN_RULE, categorize, series_features, slice_pattern  # noqa: E402
from preprocess import load_hu, pixel_spacing, slice_thickness  # noqa: E402


def main() -> None:
    req = json.load(sys.stdin)
    slices = []
    for f, pos in zip(req["files"], req["positions"]):
        hu, ds = load_hu(f)
        a = analyse_slice(hu, pixel_spacing(ds), thickness_mm=slice_thickness(ds))
        slices.append({"pattern": slice_pattern(a["lung"], a["side"], a["opacity"], a["high"], a["px"]), "position": pos})
    feats = series_features(slices, req.get("iop"), float(req["spacingMm"]))
    cat, crit = categorize(feats)
    out = []
    for s in slices:
        p = dict(s["pattern"])
        p["foci"] = [{k: v for k, v in f.items() if k != "runs"} | {"runs": len(f["runs"]) // 3} for f in p["foci"]]
        out.append(p)
    json.dump({"slices": out, "features": feats, "category": cat, "criteria": crit, "rule": PATTERN_RULE}, sys.stdout)


if __name__ == "__main__":
    main()

"""How the opacity measurement moves when the scan is noisier or thicker than COVID-CT-MD's (simulated).

Usage: /usr/bin/python3 training/robustness.py [--every 1] > training/runs/robustness.md
The three COVID-CT-MD series are 2 mm, Siemens D40s (a soft kernel). Hospitals also send sharper kernels (more
noise) and 5 mm reconstructions (more partial volume). Neither is in the shared data, so this simulates them:
  noise σ      white Gaussian noise of σ HU added to every pixel (seeded), the noise of sharper kernels / lower dose
  thick 6 mm   each slice replaced by the mean of itself and its two neighbours (3 × 2 mm), then every third kept;
               measured once as if 2 mm (no widening, as in 2.0.0) and once with SliceThickness 6 mm
For each series and perturbation: lung volume, % opacity (the input of the burden gate), the burden gate of the
shipped fusion, and the slice AUC of the opacity area (infection visible). Uses the Python twin of the node's lung
segmentation and opacity (training/lung.py; tests/model/lung.test.ts holds TS = Python).
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from lung import analyse_slice  # noqa: E402
from metrics import auc  # noqa: E402
from preprocess import load_hu, pixel_spacing  # noqa: E402

DATA = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))
SERIES = ("P001", "cap001", "normal001")
# (name, noise sigma HU, slices averaged, SliceThickness passed to the measurement)
PERTURBATIONS = (("none", 0, 1, 2.0), ("noise σ 40 HU", 40, 1, 2.0), ("noise σ 80 HU", 80, 1, 2.0),
                 ("thick 6 mm, measured as 2 mm (no widening)", 0, 3, 2.0),
                 ("thick 6 mm, SliceThickness 6 (ground-glass opening widened)", 0, 3, 6.0))


def load_series(series):
    labels = {}
    with open(os.path.join(DATA, "covid-ct-md", "slice_labels.csv"), newline="") as f:
        for r in csv.DictReader(f):
            if r["series"] == series:
                labels[r["SOPInstanceUID"]] = int(r["label"])
    d = os.path.join(DATA, "covid-ct-md", series)
    sl = []
    for fn in os.listdir(d):
        hu, ds = load_hu(os.path.join(d, fn))
        sl.append((float(ds.ImagePositionPatient[2]), hu, pixel_spacing(ds), labels.get(str(ds.SOPInstanceUID), 0)))
    sl.sort(key=lambda t: -t[0])
    return sl


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=sorted(glob.glob(os.path.join(HERE, "..", "models", "*.json")))[-1],
                    help="model metadata whose burden gate is shown (default: the newest in models/)")
    args = ap.parse_args()
    with open(args.model) as f:
        bg = json.load(f)["fusion"]["burdenGate"]
    print("| Series | Perturbation | Slices | Lung (mL) | % opacity | Burden gate | Slice AUC of opacity area |")
    print("|---|---|---|---|---|---|---|")
    out = []
    for s in SERIES:
        sl = load_series(s)
        spacing_mm = abs(sl[0][0] - sl[1][0])
        for name, sigma, thick, thickness in PERTURBATIONS:
            rng = np.random.RandomState(0)
            lung = op = 0.0
            ys, ps = [], []
            idx = range(1, len(sl) - 1, 3) if thick > 1 else range(len(sl))
            for i in idx:
                hu = sl[i][1]
                if thick > 1:
                    hu = (sl[i - 1][1] + hu + sl[i + 1][1]) / 3
                if sigma:
                    hu = hu + rng.normal(0, sigma, hu.shape)
                a = analyse_slice(hu, sl[i][2], thickness_mm=thickness)["total"]
                lung += a["lungMm2"]
                op += a["opacityMm2"]
                ys.append(sl[i][3])
                ps.append(a["opacityMm2"])
            pct = 100 * op / lung if lung else 0.0
            gate = 1 / (1 + math.exp(-bg["slope"] * (math.log(pct + bg["offsetPercent"]) - bg["centre"])))
            a_ = auc(ys, ps) if 0 < sum(ys) < len(ys) else float("nan")
            ml = lung * spacing_mm * thick / 1000
            out.append({"series": s, "perturbation": name, "slices": len(ys), "lungMl": ml, "percentOpacity": pct,
                        "burdenGate": gate, "sliceAucOpacity": a_})
            print(f"| {s} | {name} | {len(ys)} | {ml:.0f} | {pct:.2f} | {gate:.3f} | "
                  f"{'n/a' if a_ != a_ else f'{a_:.3f}'} |", flush=True)
    print("\n" + json.dumps(out))


if __name__ == "__main__":
    main()

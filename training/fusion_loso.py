"""Leave-one-series-out check of the fusion's slice gate and burden gate on COVID-CT-MD.

The shipped gates are fitted on all three COVID-CT-MD series, so the pooled slice AUC in the model card is
in-sample for the fusion. This script refits both with exactly the rules of evaluate.py on two series and scores
the third with them, which is the closest this project's data comes to "a real HU series it has never seen".
It reads the node's own output, so what it measures is the shipped pipeline (lungs, opacity, CNN in ONNX):

  for s in P001 cap001 normal001; do node dist/cli/main.js score --json ../shared/data/covid-ct-md/$s > /tmp/ctmd/$s.json; done
  /usr/bin/python3 training/fusion_loso.py /tmp/ctmd            # prints a markdown table and JSON

Per held-out series (fusion_fit.py, the same code evaluate.py fits with): slice gate = logistic fit of the slice
labels of the other two on ln(opacity mm2 + 10); burden gate = the rule, which needs one normal and one pneumonia
series among the other two (so it cannot be refitted when the normal series is held out: that row keeps the
shipped burden gate and says so). The CNN share is the shipped one; --nested re-chooses it on the other two series
by the in-sample rule of model 2.0.0 (which is how that rule was found unstable). CNN calibration, thresholds and
k are the shipped ones (chosen on cross-validation, not on COVID-CT-MD).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from fusion_fit import CNN_SHARES, arrays, loso_report, loso_series, slice_gate, slice_probability  # noqa: E402
from metrics import auc, bootstrap_auc_ci  # noqa: E402

SERIES = ("P001", "cap001", "normal001")
DATA = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))


def load_series(folder: str) -> dict:
    """The node's output (`mlsam score --json`, one file per series) with the radiologists' slice labels."""
    labels = {}
    with open(os.path.join(DATA, "covid-ct-md", "slice_labels.csv"), newline="") as f:
        for r in csv.DictReader(f):
            labels[r["SOPInstanceUID"]] = int(r["label"])
    out = {}
    for s in SERIES:
        with open(os.path.join(folder, f"{s}.json")) as f:
            doc = json.load(f)
        ser = doc["series"][0]
        rows = [{"label": labels.get(sl["sopInstanceUid"], 0), "cnn": float(sl["cnnProbability"]),
                 "lungMm2": float(sl["lungAreaMm2"]), "opacityMm2": float(sl["lungAreaMm2"]) * float(sl["opacityPercent"]) / 100,
                 "node": float(sl["probability"]), "instanceNumber": sl.get("instanceNumber")} for sl in doc["slices"]]
        out[s] = {"rows": rows, "percentOpacity": float(ser["opacity"]["total"]["percentOpacity"]), "opacity": ser["opacity"],
                  "score": float(ser["score"]), "category": ser["category"], "model": doc["model"]}
    return out


def nested(series: dict, cal: dict) -> float:
    """Pooled slice AUC when the share, too, is re-chosen on the other two series by 2.0.0's in-sample rule."""
    ys, ps = [], []
    for h in series:
        rest = {s: v for s, v in series.items() if s != h}
        gate = slice_gate(rest)
        y, op, cnn = arrays(rest)
        alone = auc(y, slice_probability(op, cnn, gate, 0.0, cal))
        share = max([w for w in CNN_SHARES if auc(y, slice_probability(op, cnn, gate, w, cal)) >= alone - 0.02] or [0.0])
        rows = series[h]["rows"]
        ys += [r["label"] for r in rows]
        ps += list(slice_probability([r["opacityMm2"] for r in rows], [r["cnn"] for r in rows], gate, share, cal))
    return auc(ys, ps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", nargs="?", default="/tmp/ctmd")
    args = ap.parse_args()
    data = load_series(args.folder)
    version = data["P001"]["model"]["version"]
    with open(os.path.join(HERE, "..", "models", f"mlsam-mobilenetv2-{version}.json")) as f:
        fusion = json.load(f)["fusion"]
    cal, share = fusion["cnnCalibration"], fusion["sliceGate"]["cnnShare"]
    rep = loso_report(data, share, cal)
    ser = loso_series(data, fusion)
    shipped_y = [r["label"] for s in SERIES for r in data[s]["rows"]]
    shipped_p = [r["node"] for s in SERIES for r in data[s]["rows"]]
    lo, hi = bootstrap_auc_ci(np.array(shipped_y), np.array(shipped_p), n=2000, seed=0)
    print(f"model {version}, CNN share {share}\n")
    print("| Held out | Slice gate fitted on the other two (centre, slope) | Burden gate | Score (category) | "
          "Shipped gates: score (category) | Slice AUC |")
    print("|---|---|---|---|---|---|")
    for h in SERIES:
        g, t = rep["perSeries"][h]["sliceGate"], ser[h]
        bg = f"{t['burdenGate']:.3f} ({'refitted' if t['burdenGateRefitted'] else 'shipped: no normal series left to fit it'})"
        sa = rep["perSeries"][h]["sliceAuc"]
        print(f"| {h} | {g['centre']:.2f}, {g['slope']:.2f} | {bg} | {t['score']:.3f} ({t['category']}) | "
              f"{data[h]['score']:.3f} ({data[h]['category']}) | {'n/a' if sa is None else f'{sa:.3f}'} |")
    a, (l2, h2) = rep["pooledSliceAuc"], rep["pooledSliceAuc95ci"]
    print(f"\npooled slice AUC ({rep['slices']} slices): leave-one-series-out {a:.3f} (95 % CI {l2:.3f}-{h2:.3f}); "
          f"shipped gates (in-sample) {auc(shipped_y, shipped_p):.3f} ({lo:.3f}-{hi:.3f}); share also re-chosen per "
          f"held-out series by 2.0.0's in-sample rule {nested(data, cal):.3f}")
    print(json.dumps({"loso": rep, "series": ser}, default=lambda o: None if isinstance(o, float) and math.isnan(o) else o))


if __name__ == "__main__":
    main()

"""Evaluate the final model once and fit the fusion: everything export.py writes into the metadata.

Usage: /usr/bin/python3 training/evaluate.py --run training/runs/lung-all --cv training/runs/cv.json
Writes <run>/results.json (slice, series, quantification, fusion, metrics, training).

What is chosen on what (fixed before the test split is looked at):
  CNN slice threshold, CNN calibration, epoch count, TTA   cross-validation (cv.py): pooled out-of-fold
                                                            predictions on covid-ct train+val and mosmed
  slice gate  P(infection visible | opacity area)         logistic fit on the COVID-CT-MD slice labels
                                                            (P001, cap001, normal001: 470 slices, 3 patients)
  burden gate and fused categories                        a documented rule on the three COVID-CT-MD series
                                                            (see burden_gate below); threshold 0.5 +- 0.15
  test (covid-ct official test split)                      run once, CNN only (8-bit images have no HU)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from data import DATA, load_unit, manifest_hashes  # noqa: E402
from fusion_fit import (K_FRACTION, K_MIN, KEY_SLICES, SHARE_TOLERANCE, SLICE_OFFSET_MM2,  # noqa: E402
                        burden_gate, choose_share, loso_report, loso_series, series_metrics, sigmoid, slice_gate)
from lung import QUANTIFICATION, analyse_slice  # noqa: E402
from metrics import auc, binary, bootstrap_auc_ci, calibration  # noqa: E402
from model import MLSAM  # noqa: E402
from preprocess import PREPROCESSING, load_hu, normalize, pixel_spacing, preprocess_unit, slice_thickness  # noqa: E402
from train import index  # noqa: E402

SERIES = ("P001", "cap001", "normal001")
TRUTH = {"P001": "COVID-19", "cap001": "community-acquired pneumonia (not COVID)", "normal001": "normal"}
MIN_LUNG_FRACTION, MIN_SERIES_LUNG_MM2 = 0.2, 2000.0
FUSED_THRESHOLD, FUSED_MARGIN = 0.5, 0.15


def full_predict(model, units, tta, bs=16):
    """CNN probabilities of preprocessed 224x224 units through the full float32 network (as the node runs it)."""
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(units), bs):
            x = torch.from_numpy(np.stack([normalize(u) for u in units[s:s + bs]]))
            p = model(x)[0]
            if tta:
                p = (p + model(torch.flip(x, dims=[3]))[0]) / 2
            out.append(p.numpy())
    return np.concatenate(out)


def slice_spacing(positions):
    """Median spacing of the sorted slice positions (mm), as the node computes it (src/scoring/series-opacity.ts)."""
    p = np.sort(np.asarray(positions, np.float64))
    d = np.diff(p)
    d = d[d > 1e-3]
    return float(np.median(d)) if d.size else 1.0


def report(y, p, thr, seed=0):
    lo, hi = bootstrap_auc_ci(y, p, n=2000, seed=seed)
    return {"n": int(len(y)), "positives": int(np.sum(y)), "auc": auc(y, p), "auc95ci": [lo, hi],
            "atThreshold": binary(y, p, thr), "at0.5": binary(y, p, 0.5), "calibration": calibration(y, p)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True)
    ap.add_argument("--cv", required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()
    with open(args.cv) as f:
        cv = json.load(f)
    with open(os.path.join(args.run, "train.json")) as f:
        tinfo = json.load(f)
    tta = bool(cv["tta"]["use"])
    thr = float(cv["threshold"])
    model = MLSAM()
    model.load_state_dict(torch.load(os.path.join(args.run, "model.pt"), map_location="cpu"))
    model.eval()

    # ---- COVID-CT-MD: CNN through the full pipeline, lungs and opacity by the reference implementation
    ct = index("ctmd")
    rows = []
    units = []
    for it in ct:
        hu, ds = load_hu(os.path.join(DATA, it["file"]))
        sp = pixel_spacing(ds)
        a = analyse_slice(hu, sp, thickness_mm=slice_thickness(ds))
        units.append(preprocess_unit(hu, "hu", PREPROCESSING, sp, a))
        rows.append({"series": it["series"], "label": it["label"], "position": it["position"], "instanceNumber": it["instanceNumber"],
                     "lungMm2": a["total"]["lungMm2"], "opacityMm2": a["total"]["opacityMm2"],
                     "highMm2": a["total"]["highMm2"]})
    p_ct = full_predict(model, units, tta)
    for r, p in zip(rows, p_ct):
        r["cnn"] = float(p)
    y_ct = np.array([r["label"] for r in rows])
    op = np.array([r["opacityMm2"] for r in rows])

    # per series: its rows, opacity burden (% of lung volume), high opacity and lung volume
    by_series = {}
    for s in SERIES:
        rs = [r for r in rows if r["series"] == s]
        lung = sum(r["lungMm2"] for r in rs)
        by_series[s] = {"rows": rs, "percentOpacity": 100 * sum(r["opacityMm2"] for r in rs) / lung,
                        "percentHighOpacity": 100 * sum(r["highMm2"] for r in rs) / lung,
                        "lungMl": lung * slice_spacing([r["position"] for r in rs]) / 1000}
    cal = cv["calibration"]
    # slice gate: P(infection visible | opacity area), fitted on the COVID-CT-MD slice labels
    gate = slice_gate(by_series)
    # the CNN's share of the slice probability (fusion_fit.choose_share): judged leave-one-series-out; the CNN
    # tells COVID-19 from other opacity, which lowers the pooled infection AUC when other pneumonias are in the pool
    share = choose_share(by_series, cal)
    cnn_share = share["share"]
    g = sigmoid(gate["slope"] * (np.log(op + SLICE_OFFSET_MM2) - gate["centre"]))
    gate_auc = auc(y_ct, g)
    # burden gate rule (fusion_fit.burden_gate): centre between the normal series' burden and the smaller
    # pneumonia burden (log scale), slope such that the normal series maps to 0.1
    bgate = burden_gate(by_series)
    fusion = {
        "method": "gated-v1",
        "eligibility": {"minLungFraction": MIN_LUNG_FRACTION, "minSeriesLungMm2": MIN_SERIES_LUNG_MM2},
        "cnnCalibration": {"intercept": cv["calibration"]["intercept"], "slope": cv["calibration"]["slope"]},
        "sliceGate": {"centre": gate["centre"], "slope": gate["slope"], "offsetMm2": SLICE_OFFSET_MM2, "cnnShare": cnn_share},
        "burdenGate": bgate,
        "threshold": FUSED_THRESHOLD,
        "indeterminateMargin": FUSED_MARGIN,
        "fittedOn": {
            "cnnCalibration": "class-balanced Platt scaling of the pooled out-of-fold CNN predictions of cross-validation "
                              "(covid-ct train+val, mosmed)",
            "sliceGate": "logistic regression of the COVID-CT-MD slice labels (infection visible; P001, cap001, "
                         "normal001, 470 slices) on ln(opacity mm2 + 10); cnnShare: the largest of 0.25/0.5/0.75/1 "
                         f"whose leave-one-series-out pooled slice AUC stays within {SHARE_TOLERANCE} of the gate "
                         "alone (share 0), the slice gate refitted without the held-out series",
            "cnnShareLosoAuc": share["losoAuc"],
            "gateAloneAuc": gate_auc,
            "burdenGate": "rule on the three COVID-CT-MD series: centre = mean of ln(%opacity + 0.1) of the normal "
                          "series and of the less opaque pneumonia series, slope so that the normal series maps to 0.1",
            "thresholds": "0.5 +- 0.15, fixed (score = burden gate x calibrated CNN probability)",
        },
    }
    # the closest these data come to series never seen: every gate refitted without the series it scores
    fusion["validation"] = {**loso_report(by_series, cnn_share, cal), "series": loso_series(by_series, fusion)}
    ctmd_metrics = series_metrics(by_series, fusion, thr, 0.1, TRUTH)

    # ---- COVID-CT official test split: once, CNN only
    te = index("test")
    y_te = np.array([i["label"] for i in te])
    p_te = full_predict(model, [load_unit(it) for it in te], tta)

    dev = index("dev")
    counts = {}
    for g, items in (("dev", dev), ("test", te), ("ctmd", ct)):
        c = {}
        for it in items:
            c.setdefault(it["source"], {"n": 0, "positives": 0})
            c[it["source"]]["n"] += 1
            c[it["source"]]["positives"] += it["label"]
        counts[g] = c
    metrics = {
        "crossValidation": cv["oof"],
        "crossValidationPerEpoch": cv["perEpoch"],
        "tta": cv["tta"],
        "test": {"covidCtOfficialTest": report(y_te, p_te, thr)},
        "covidCtMd": {"note": "3 patients, never trained on; slice labels = infection visible. The slice gate was "
                              "fitted and the burden gate set on these same series: in-sample.",
                      **ctmd_metrics},
    }
    training = {
        "data": [
            {"set": "covid-ct", "use": "official train + val: 5-fold cross-validation grouped by patient, then the final "
             "model on all of it; official test -> reported once"},
            {"set": "mosmed", "use": "5 folds stratified by severity (one slice per study), then the final model on all"},
            {"set": "sars-cov-2-ct", "use": (
                f"training only, sampling weight {tinfo['args'].get('extra_weight')} per image (no patient ids: never "
                "validated on; cross-validation judged its effect on the covid-ct and mosmed folds)"
                if tinfo["args"].get("extra_weight", 0) > 0 else
                "not used (source shortcut in model 1.x: validation AUC fell to chance)")},
            {"set": "covid-ct-md", "use": "never trained on; slice gate fitted, burden gate and categories set on it"},
        ],
        "counts": counts,
        "manifestSha256": manifest_hashes(),
        "dataRoot": "../shared/data",
        "epochs": tinfo["epochsRun"],
        "epochsRule": cv["rule"],
        "epochsRuleHistory": cv.get("ruleHistory"),
        "seed": tinfo["seed"],
        "hyperParameters": tinfo["args"],
        "durationSeconds": round(tinfo["durationSeconds"], 1),
        "trainImagesPerSecond": round(float(np.mean([h["imgPerSec"] for h in tinfo["history"]])), 2),
        "crossValidationFolds": cv["folds"],
        **({"frozen": "nothing (train_full.py: every block fine-tuned; BatchNorm statistics kept from ImageNet)",
            "augmentation": "online, every draw (data.online_augment): JPEG re-encode q 30-95 (p .5), Gaussian blur "
                            "(p .35), random resized crop (area .6-1), rotation +-10 deg, h-flip p .5, "
                            "gamma/contrast/brightness"}
           if tinfo.get("recipe", "").startswith("full fine-tuning") else
           {"frozen": "features[0:7] (strides 2-8, cached); fine-tuned: features[7:19] + attention heads",
            "augmentation": f"{tinfo['args'].get('aug_views', 1)} extra cached view(s) per training image: random "
                            "Gaussian blur (p .35), JPEG re-encode q 30-95 (p .6), affine (rot +-10 deg, scale "
                            ".88-1.12, shift +-6 %, h-flip p .5), gamma/contrast/brightness"}),
        "run": os.path.relpath(args.run, os.path.dirname(HERE)),
    }
    res = {
        "slice": {"threshold": thr, "rule": "Youden J of the pooled out-of-fold predictions (CNN only)", "tta": tta},
        "series": {
            "aggregation": {"method": "topk-mean", "kFraction": K_FRACTION, "kMin": K_MIN,
                            "description": "mean of the k highest slice probabilities, k = min(n, max(kMin, "
                            "ceil(kFraction * n))): of all slices (cnn-only) or of the eligible ones ranked by "
                            "fused probability (fusion)"},
            "threshold": thr, "indeterminateMargin": 0.1,
            "categories": {"likely": "score >= threshold + margin", "unlikely": "score <= threshold - margin",
                           "indeterminate": "otherwise"},
            "keySlices": KEY_SLICES,
        },
        "quantification": QUANTIFICATION,
        "fusion": fusion,
        "metrics": metrics,
        "training": training,
        "evaluationSeconds": time.time() - t0,
        # per-slice inputs of the fusion (not exported; for the model card and for re-fitting without re-running)
        "ctmdRows": rows,
    }
    with open(os.path.join(args.run, "results.json"), "w") as f:
        json.dump(res, f, indent=2)
    t = metrics["test"]["covidCtOfficialTest"]
    print(json.dumps({"thr": thr, "tta": tta, "testAuc": t["auc"], "ci": t["auc95ci"], "acc": t["atThreshold"]["accuracy"],
                      "pooledSliceAuc": ctmd_metrics["pooledSliceAuc"], "fusion": fusion,
                      "series": {s: {k: v for k, v in r.items() if k != "keySlices"} for s, r in ctmd_metrics["series"].items()}}, indent=1))


if __name__ == "__main__":
    main()

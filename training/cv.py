"""Cross-validation summary of training/runs/lung-fold{0..4}: out-of-fold (OOF) predictions of the dev set
(covid-ct train+val, 5 patient-grouped folds; mosmed, 5 folds stratified by severity), per epoch.

Usage: /usr/bin/python3 training/cv.py [--runs training/runs] -> <runs>/cv.json
Chooses, on OOF predictions only:
  chosenEpochs  the epoch count with the best pooled OOF AUC (ties: fewer epochs)
  tta           whether averaging with the mirrored image pays: OOF AUC gain at the last epoch (the only one
                with mirrored predictions) >= 0.005 - its latency cost is measured in the bench
  threshold     the Youden-J optimum of the pooled OOF predictions at chosenEpochs (the CNN-only slice
                threshold: 8-bit images, and the categories of CNN-only series)
  calibration   Platt scaling of the OOF predictions: p_cal = sigmoid(a + b logit(p)) (used by the fusion)
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from metrics import auc, binary, bootstrap_auc_ci, calibration, youden_threshold  # noqa: E402
from train import index  # noqa: E402

FOLDS = 5


def logit(p):
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def platt(p, y, iters=200):
    """Logistic regression of y on logit(p) (Newton), returns (intercept, slope)."""
    x = logit(p)
    X = np.stack([np.ones_like(x), x], 1)
    w = np.array([0.0, 1.0])
    for _ in range(iters):
        z = X @ w
        q = 1 / (1 + np.exp(-z))
        g = X.T @ (q - y)
        H = (X * (q * (1 - q))[:, None]).T @ X + 1e-6 * np.eye(2)
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default=os.path.join(HERE, "runs"))
    args = ap.parse_args()
    dev = index("dev")
    y = np.array([it["label"] for it in dev])
    src = np.array([it["source"] for it in dev])
    official = np.array([it.get("officialSplit", "") for it in dev])
    oof = None
    oof_flip = np.full(len(dev), np.nan)
    folds = []
    for k in range(FOLDS):
        run = os.path.join(args.runs, f"lung-fold{k}")
        z = np.load(os.path.join(run, "preds.npz"))
        with open(os.path.join(run, "train.json")) as f:
            info = json.load(f)
        idx = z["val_idx"]
        val = z["val"]  # [epochs, n]
        if oof is None:
            oof = np.full((val.shape[0], len(dev)), np.nan)
        oof[:, idx] = val
        oof_flip[idx] = z["val_flip"]
        folds.append({"fold": k, "n": int(len(idx)), "durationSeconds": round(info["durationSeconds"], 1),
                      "imgPerSec": round(float(np.mean([h["imgPerSec"] for h in info["history"]])), 2),
                      "lastEpochAuc": auc(y[idx], val[-1])})
    assert oof is not None and not np.isnan(oof).any(), "every dev image must be out-of-fold exactly once"
    per_epoch = []
    for e in range(oof.shape[0]):
        p = oof[e]
        per_epoch.append({"epoch": e + 1, "auc": auc(y, p), "aucCovidCt": auc(y[src == "covid-ct"], p[src == "covid-ct"]),
                          "aucMosmed": auc(y[src == "mosmed"], p[src == "mosmed"])})
    best = max(per_epoch, key=lambda r: (round(r["auc"], 4), -r["epoch"]))
    E = best["epoch"]
    p = oof[E - 1]
    last = oof[-1]
    tta_gain = auc(y, (last + oof_flip) / 2) - auc(y, last)
    use_tta = bool(tta_gain >= 0.005)
    # mirrored predictions exist for the last epoch only: TTA is used only when that is also the chosen epoch
    use_tta = use_tta and E == oof.shape[0]
    p_sel = (p + oof_flip) / 2 if use_tta else p
    thr = round(youden_threshold(y, p_sel), 4)
    a, b = platt(p_sel, y)

    def rep(mask):
        yy, pp = y[mask], p_sel[mask]
        lo, hi = bootstrap_auc_ci(yy, pp, n=2000, seed=0)
        return {"n": int(mask.sum()), "positives": int(yy.sum()), "auc": auc(yy, pp), "auc95ci": [lo, hi],
                "atThreshold": binary(yy, pp, thr), "at0.5": binary(yy, pp, 0.5), "calibration": calibration(yy, pp)}

    out = {
        "folds": folds,
        "perEpoch": per_epoch,
        "chosenEpochs": E,
        "rule": "epoch count with the best pooled out-of-fold AUC; threshold = Youden J of the pooled OOF predictions",
        "tta": {"use": use_tta, "oofAucGainAtLastEpoch": tta_gain,
                "oofAucLastEpoch": auc(y, last), "oofAucLastEpochWithFlip": auc(y, (last + oof_flip) / 2)},
        "threshold": thr,
        "calibration": {"intercept": a, "slope": b, "fittedOn": "pooled out-of-fold predictions (covid-ct train+val, mosmed)"},
        "oof": {"all": rep(np.ones(len(y), bool)), "covidCt": rep(src == "covid-ct"), "mosmed": rep(src == "mosmed"),
                "covidCtOfficialVal": rep(official == "val")},
    }
    with open(os.path.join(args.runs, "cv.json"), "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps({k: out[k] for k in ("chosenEpochs", "tta", "threshold", "calibration")}, indent=1))
    for r in per_epoch:
        print(f"epoch {r['epoch']:2d} OOF AUC {r['auc']:.4f} covid-ct {r['aucCovidCt']:.4f} mosmed {r['aucMosmed']:.4f}")


if __name__ == "__main__":
    main()

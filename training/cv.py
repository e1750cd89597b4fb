"""Cross-validation summary of training/runs/lung-fold{0..4}: out-of-fold (OOF) predictions of the dev set
(covid-ct train+val, 5 patient-grouped folds; mosmed, 5 folds stratified by severity), per epoch.

Usage: /usr/bin/python3 training/cv.py [--runs training/runs] -> <runs>/cv.json
Chooses, on OOF predictions only:
  chosenEpochs  the epoch count with the best mean of the per-source OOF AUCs (covid-ct, mosmed; ties: fewer
                epochs). A first rule, the pooled OOF AUC, picked an isolated bump at epoch 5: pooling mixes the
                two sources' base rates (mosmed is 77 % positive) and rewards cross-source calibration, not
                ranking within a source; it was replaced before the final model was trained.
  tta           whether averaging with the mirrored image pays: OOF AUC gain at the last epoch (the only one
                with mirrored predictions) >= 0.005, and its cost measured in the bench acceptable. Measured for
                2.0.0 (bench:infer, 148 P001 slices, 2 cores): +0.007 OOF AUC for 2.2x the ONNX time per slice
                (4.3 -> 9.7 ms), a worker 15-20 % slower and a peak RSS of 1.19 GB instead of 0.65 GB (over
                the 1 GB budget): not used (TTA_PAYS = False)
  threshold     the Youden-J optimum of the pooled OOF predictions at chosenEpochs (the CNN-only slice
                threshold: 8-bit images, and the categories of CNN-only series)
  calibration   Platt scaling of the OOF predictions, classes weighted to a 50 % prior (the pooled data are 65 %
                positive; real series are not): p_cal = sigmoid(a + b logit(p)) (used by the fusion)
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
# Set from the bench measurement in the module doc: the OOF gain alone is not enough, TTA must fit the budget.
TTA_PAYS = False


def logit(p):
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def platt(p, y, iters=200, balanced=True):
    """Logistic regression of y on logit(p) (Newton), returns (intercept, slope); with balanced, each class
    weighs half (a 50 % prior)."""
    x = logit(p)
    y = np.asarray(y, np.float64)
    X = np.stack([np.ones_like(x), x], 1)
    sw = np.where(y == 1, 0.5 / max(y.mean(), 1e-9), 0.5 / max(1 - y.mean(), 1e-9)) if balanced else np.ones_like(y)
    w = np.array([0.0, 1.0])
    for _ in range(iters):
        z = X @ w
        q = 1 / (1 + np.exp(-z))
        g = X.T @ (sw * (q - y))
        H = (X * (sw * q * (1 - q))[:, None]).T @ X + 1e-6 * np.eye(2)
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default=os.path.join(HERE, "runs"))
    ap.add_argument("--prefix", default="lung-fold", help="fold runs are <runs>/<prefix>0..4 (train_full.py: full-fold)")
    ap.add_argument("--pack", default=None, help="read the dev index from a gpu_pack.py file (a device machine)")
    args = ap.parse_args()
    dev = json.loads(str(np.load(args.pack)["index_dev"])) if args.pack else index("dev")
    y = np.array([it["label"] for it in dev])
    src = np.array([it["source"] for it in dev])
    official = np.array([it.get("officialSplit", "") for it in dev])
    oof = None
    oof_flip = np.full(len(dev), np.nan)
    folds = []
    for k in range(FOLDS):
        run = os.path.join(args.runs, f"{args.prefix}{k}")
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
    for r in per_epoch:
        r["meanSourceAuc"] = (r["aucCovidCt"] + r["aucMosmed"]) / 2
    best = max(per_epoch, key=lambda r: (round(r["meanSourceAuc"], 4), -r["epoch"]))
    E = best["epoch"]
    p = oof[E - 1]
    last = oof[-1]
    tta_gain = auc(y, (last + oof_flip) / 2) - auc(y, last)
    use_tta = bool(tta_gain >= 0.005) and TTA_PAYS
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
        "rule": "epoch count with the best mean of the per-source out-of-fold AUCs (covid-ct, mosmed); threshold = "
                "Youden J of the pooled OOF predictions; calibration = class-balanced Platt scaling of them",
        "ruleHistory": "set for model 2.0.0, whose first rule (best pooled OOF AUC) chose epoch 5, an isolated bump, and "
                       "was replaced by the mean of the per-source AUCs after seeing that cross-validation curve and before "
                       "training the final model; unchanged since (fixed before 2.2.0's cross-validation ran)",
        "tta": {"use": use_tta, "oofAucGainAtLastEpoch": tta_gain,
                "cost": "measured with bench:infer on 148 P001 slices (2 cores): ONNX 4.3 -> 9.7 ms per slice, worker "
                        "40 -> 34 slices/s, peak RSS 0.65 -> 1.19 GB (budget 1 GB): the gain does not pay for it",
                "oofAucLastEpoch": auc(y, last), "oofAucLastEpochWithFlip": auc(y, (last + oof_flip) / 2)},
        "threshold": thr,
        "calibration": {"intercept": a, "slope": b,
                        "fittedOn": "pooled out-of-fold predictions (covid-ct train+val, mosmed), classes weighted to a 50 % prior"},
        "oof": {"all": rep(np.ones(len(y), bool)), "covidCt": rep(src == "covid-ct"), "mosmed": rep(src == "mosmed"),
                "covidCtOfficialVal": rep(official == "val")},
    }
    with open(os.path.join(args.runs, "cv.json"), "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps({k: out[k] for k in ("chosenEpochs", "tta", "threshold", "calibration")}, indent=1))
    for r in per_epoch:
        print(f"epoch {r['epoch']:2d} OOF AUC {r['auc']:.4f} covid-ct {r['aucCovidCt']:.4f} mosmed {r['aucMosmed']:.4f} mean {r['meanSourceAuc']:.4f}")


if __name__ == "__main__":
    main()

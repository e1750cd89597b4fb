"""Applies training/results/full/RULE.md to a cv.json of the full fine-tuning cross-validation.

Usage: /usr/bin/python3 training/full_verdict.py --cv training/results/full/cv.json [--model models/<shipped>.json]
Prints a JSON verdict: the per-source out-of-fold AUCs of both CNNs, the gain of their mean, and adopt true/false.
The reference is the CNN shipped when the rule was written (model 2.1.0, the CNN of 2.0.0); its cross-validation
AUCs are kept here so that the verdict can be recomputed after that model's files have been replaced.
"""
from __future__ import annotations

import argparse
import json

MIN_MEAN_GAIN = 0.01
MAX_SOURCE_LOSS = 0.01
# metrics.crossValidation of models/mlsam-mobilenetv2-2.1.0.json (the shipped CNN when RULE.md was written)
REFERENCE_2_1_0 = {"covidCt": {"auc": 0.9055558587567538}, "mosmed": {"auc": 0.7448836677528154}}


def verdict(cv: dict, shipped: dict) -> dict:
    new = {"covidCt": cv["oof"]["covidCt"]["auc"], "mosmed": cv["oof"]["mosmed"]["auc"]}
    ref = {"covidCt": shipped["covidCt"]["auc"], "mosmed": shipped["mosmed"]["auc"]}
    gain = (new["covidCt"] + new["mosmed"]) / 2 - (ref["covidCt"] + ref["mosmed"]) / 2
    worst = min(new[s] - ref[s] for s in new)
    return {"rule": "mean of per-source OOF AUCs +>= 0.01, no source more than 0.01 worse (RULE.md)",
            "chosenEpochs": cv["chosenEpochs"], "full": new, "shipped": ref, "meanGain": gain,
            "worstSourceChange": worst, "adopt": bool(gain >= MIN_MEAN_GAIN and worst >= -MAX_SOURCE_LOSS)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cv", required=True)
    ap.add_argument("--model", default=None, help="metadata of another reference CNN (default: 2.1.0's numbers)")
    a = ap.parse_args()
    with open(a.cv) as f:
        cv = json.load(f)
    shipped = REFERENCE_2_1_0
    if a.model:
        with open(a.model) as f:
            shipped = json.load(f)["metrics"]["crossValidation"]
    print(json.dumps(verdict(cv, shipped), indent=1))


if __name__ == "__main__":
    main()

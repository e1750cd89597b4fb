"""Applies training/results/full/RULE.md to a cv.json of the full fine-tuning cross-validation.

Usage: /usr/bin/python3 training/full_verdict.py --cv training/results/full/cv.json [--model models/<shipped>.json]
Prints a JSON verdict: the per-source out-of-fold AUCs of both CNNs, the gain of their mean, and adopt true/false.
"""
from __future__ import annotations

import argparse
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
MIN_MEAN_GAIN = 0.01
MAX_SOURCE_LOSS = 0.01


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
    ap.add_argument("--model", default=os.path.join(HERE, "..", "models", "mlsam-mobilenetv2-2.1.0.json"))
    a = ap.parse_args()
    with open(a.cv) as f:
        cv = json.load(f)
    with open(a.model) as f:
        shipped = json.load(f)["metrics"]["crossValidation"]
    print(json.dumps(verdict(cv, shipped), indent=1))


if __name__ == "__main__":
    main()

"""A new model version that keeps the shipped CNN (the same ONNX bytes) and changes only the HU side.

Usage (repository root; the node built with `npm run build`):
  mkdir -p /tmp/ctmd && for s in P001 cap001 normal001; do
    node dist/cli/main.js score --json ../shared/data/covid-ct-md/$s > /tmp/ctmd/$s.json; done
  /usr/bin/python3 training/refit_fusion.py --base models/mlsam-mobilenetv2-2.0.0.json --node /tmp/ctmd --version 2.1.0

Retraining the CNN (run_all.sh) does not reproduce its bytes on another machine (a rerun of 2.0.0's fold 0 in a
later session gave a fold AUC of 0.859 against 0.870), and a new CNN would need a new look at the COVID-CT test
split. When only the lung measurement or the fusion rules change, this script instead:
  - takes the base metadata (its CNN, thresholds, calibration, cross-validation and test metrics stay as they are),
  - replaces `quantification` with training/lung.py's QUANTIFICATION (the node's twin reads it from the metadata),
  - refits the fusion with training/fusion_fit.py (the code evaluate.py fits with) on the node's own output for the
    three COVID-CT-MD series: CNN probabilities from the shipped ONNX, lungs and opacity from src/model,
  - adds the leave-one-series-out validation, and checks that the series results equal the base metadata's where
    the change cannot touch them (2 mm series, same fusion),
  - writes models/<name>-<version>.json naming <name>-<version>.onnx (copy or `git mv` the ONNX; same sha256) and
    points tests/fixtures/model/golden.json at it (the outputs are the same network's).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from fusion_fit import (SHARE_TOLERANCE, burden_gate, choose_share, loso_report, loso_series, series_metrics,  # noqa: E402
                        slice_gate)
from metrics import auc  # noqa: E402
from fusion_loso import load_series  # noqa: E402
from lung import QUANTIFICATION  # noqa: E402

REPO = os.path.dirname(HERE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="metadata of the shipped model whose CNN is kept")
    ap.add_argument("--node", required=True, help="folder with P001.json, cap001.json, normal001.json (mlsam score --json)")
    ap.add_argument("--version", required=True)
    ap.add_argument("--changes", default="", help="one line on what changed, for the metadata's lineage")
    args = ap.parse_args()
    with open(args.base) as f:
        base = json.load(f)
    series = load_series(args.node)
    for s, v in series.items():
        assert v["model"]["sha256"] == base["sha256"], f"{s}: scored with another ONNX ({v['model']['sha256']})"
    fusion = json.loads(json.dumps(base["fusion"]))
    cal = fusion["cnnCalibration"]
    gate = slice_gate(series)
    share = choose_share(series, cal)
    fusion["sliceGate"].update({"centre": gate["centre"], "slope": gate["slope"], "cnnShare": share["share"]})
    fusion["burdenGate"] = burden_gate(series)
    fusion["fittedOn"]["sliceGate"] = (
        "logistic regression of the COVID-CT-MD slice labels (infection visible; P001, cap001, normal001, 470 slices) "
        "on ln(opacity mm2 + 10); cnnShare: the largest of 0.25/0.5/0.75/1 whose leave-one-series-out pooled slice "
        f"AUC stays within {SHARE_TOLERANCE} of the gate alone (share 0), the slice gate refitted without the held-out "
        "series")
    fusion["fittedOn"].pop("cnnShareAuc", None)
    fusion["fittedOn"]["cnnShareLosoAuc"] = share["losoAuc"]
    fusion["fittedOn"]["inputs"] = ("the node's own output (mlsam score --json) on the three series: CNN probabilities "
                                    "of the shipped ONNX, lungs and opacity of src/model")
    y_all = [r["label"] for v in series.values() for r in v["rows"]]
    op_all = [r["opacityMm2"] for v in series.values() for r in v["rows"]]
    fusion["fittedOn"]["gateAloneAuc"] = auc(y_all, op_all)  # the gate is monotone in the opacity area
    fusion["validation"] = {**loso_report(series, share["share"], cal), "series": loso_series(series, fusion)}

    metrics = json.loads(json.dumps(base["metrics"]))
    old = base["metrics"]["covidCtMd"]
    for v in series.values():
        v.update(percentHighOpacity=float(v["opacity"]["total"]["percentHighOpacity"]), lungMl=float(v["opacity"]["total"]["lungMl"]))
    metrics["covidCtMd"] = {"note": old["note"], **series_metrics(
        series, fusion, float(base["series"]["threshold"]), float(base["series"].get("indeterminateMargin", 0.1)),
        {s: old["series"][s]["truth"] for s in series})}

    name = base["name"]
    onnx = f"{name}-{args.version}.onnx"
    meta = dict(base)
    meta.update({
        "version": args.version, "onnxFile": onnx,
        "createdAt": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "quantification": QUANTIFICATION, "fusion": fusion, "metrics": metrics,
        "lineage": {"cnn": f"{base['name']} {base['version']} (the same ONNX bytes, sha256 {base['sha256']}): its "
                           "training, thresholds, calibration, cross-validation and test metrics are that version's",
                    "changes": args.changes, "refitBy": "training/refit_fusion.py"},
    })
    out = os.path.join(REPO, "models", f"{name}-{args.version}.json")
    with open(out, "w") as f:
        json.dump(meta, f, indent=2)
    gpath = os.path.join(REPO, "tests", "fixtures", "model", "golden.json")
    with open(gpath) as f:
        golden = json.load(f)
    assert golden["model"]["sha256"] == base["sha256"], "golden.json belongs to another ONNX"
    golden["model"].update({"version": args.version, "onnxFile": onnx})
    with open(gpath, "w") as f:
        json.dump(golden, f)
    v = fusion["validation"]
    print(f"wrote {out}; CNN share {share['share']} (LOSO AUC by share {share['losoAuc']}); leave-one-series-out pooled "
          f"slice AUC {v['pooledSliceAuc']:.3f} ({v['pooledSliceAuc95ci'][0]:.3f}-{v['pooledSliceAuc95ci'][1]:.3f})")


if __name__ == "__main__":
    main()

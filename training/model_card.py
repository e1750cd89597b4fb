"""Render the numeric sections of MODEL_CARD.md from the shipped metadata (between the AUTO markers).

Usage: /usr/bin/python3 training/model_card.py [models/<name>-<version>.json]
"""
from __future__ import annotations

import glob
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def f3(x):
    return "n/a" if x is None or x != x else f"{x:.3f}"


def split_table(name, r, thr_name):
    t = r["atThreshold"]
    c = t["confusion"]
    h = r["at0.5"]
    lines = [
        f"**{name}** (n = {r['n']}, {r['positives']} positive)",
        "",
        f"| Metric | at the {thr_name} {t['threshold']:.3f} | at 0.5 |",
        "|---|---|---|",
        f"| Accuracy | {f3(t['accuracy'])} | {f3(h['accuracy'])} |",
        f"| Sensitivity (recall) | {f3(t['sensitivity'])} | {f3(h['sensitivity'])} |",
        f"| Specificity | {f3(t['specificity'])} | {f3(h['specificity'])} |",
        f"| Precision | {f3(t['precision'])} | {f3(h['precision'])} |",
        f"| F1 | {f3(t['f1'])} | {f3(h['f1'])} |",
        f"| Confusion (TP / FP / TN / FN) | {c['tp']} / {c['fp']} / {c['tn']} / {c['fn']} | "
        f"{h['confusion']['tp']} / {h['confusion']['fp']} / {h['confusion']['tn']} / {h['confusion']['fn']} |",
        "",
        f"AUC **{f3(r['auc'])}** (95 % bootstrap CI {f3(r['auc95ci'][0])}–{f3(r['auc95ci'][1])}, 2000 resamples, seed 0). "
        f"Calibration: ECE {f3(r['calibration']['ece'])}, Brier {f3(r['calibration']['brier'])}.",
        "",
    ]
    return "\n".join(lines) + "\n"


def render(meta):
    m = meta["metrics"]
    out = ["## Results (generated from the metadata by training/model_card.py)", ""]

    out.append("### Real HU series: COVID-CT-MD (3 DICOM series, never trained on)\n")
    out.append("Slice labels are the radiologists' *infection visible*. The slice gate was fitted and the burden gate "
               "set on these same three series, so these numbers are **in-sample for the fusion** (the CNN never saw "
               "them). The real test is on series the project has never seen.\n")
    cm = m["covidCtMd"]
    pa = cm["pooledSliceAuc"]
    out.append(f"Pooled slice AUC (infection visible, 470 slices): **fused {f3(pa['fused'])}** "
               f"(95 % CI {f3(pa['fusedCi'][0])}–{f3(pa['fusedCi'][1])}), opacity area alone {f3(pa['opacity'])}, "
               f"CNN alone {f3(pa['cnn'])}.\n")
    val = meta["fusion"].get("validation")
    if val:
        out.append(f"**Leave one series out** (each series scored with the slice gate, and where possible the burden gate, "
                   f"fitted on the other two; CNN share {val['share']:g}): pooled slice AUC **{f3(val['pooledSliceAuc'])}** "
                   f"(95 % CI {f3(val['pooledSliceAuc95ci'][0])}–{f3(val['pooledSliceAuc95ci'][1])}). This is the closest "
                   "these data come to series never seen, and still optimistic: three patients from one scanner.\n")
        out.append("| Held out | Slice gate from the other two (centre, slope) | Burden gate | Score → category | Slice AUC |")
        out.append("|---|---|---|---|---|")
        for name, r in val["series"].items():
            g = val["perSeries"][name]["sliceGate"]
            bg = "refitted" if r["burdenGateRefitted"] else "the shipped one (no normal series left to fit it)"
            out.append(f"| {name} | {g['centre']:.2f}, {g['slope']:.2f} | {r['burdenGate']:.3f}, {bg} | "
                       f"{r['score']:.3f} → {r['category']} | {f3(val['perSeries'][name]['sliceAuc'])} |")
        out.append("")
    out.append("| Series | Truth | Lung (mL) | Opacity % | High opacity % | CNN score (top k) | Burden gate | **Score** | **Category** | "
               "CNN-only top-k mean → category | Slice AUC fused / opacity / CNN |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in cm["series"].items():
        out.append(f"| {name} | {r['truth']} | {r['lungMl']:.0f} | {r['percentOpacity']:.2f} | {r['percentHighOpacity']:.2f} | "
                   f"{r['cnnScore']:.3f} | {r['burdenGate']:.3f} | **{r['score']:.3f}** | **{r['category']}** | "
                   f"{r['cnnOnlyTopkMean']:.3f} → {r['cnnOnlyCategory']} | {f3(r['sliceAucFused'])} / "
                   f"{f3(r['sliceAucOpacity'])} / {f3(r['sliceAucCnn'])} |")
    out.append("")
    for name, r in cm["series"].items():
        ks = ", ".join(f"instance {k['instanceNumber']} (label {k['label']}, p {k['p']:.2f}, lung {100 * k['lungFraction']:.0f} % of the largest)" for k in r["keySlices"])
        out.append(f"- {name} key slices: {ks}")
    out.append("")

    f = meta["fusion"]
    out.append("### Fusion parameters (`fusion` in the metadata)\n")
    out.append(f"- CNN calibration: p_cal = σ({f['cnnCalibration']['intercept']:.3f} + {f['cnnCalibration']['slope']:.3f} · logit(p)) — {f['fittedOn']['cnnCalibration']}")
    sg = f['sliceGate']
    out.append(f"- Slice probability: gate × (1 − {sg['cnnShare']:g} + {sg['cnnShare']:g} · p_cal), gate = σ({sg['slope']:.3f} · "
               f"(ln(opacity mm² + {sg['offsetMm2']:g}) − {sg['centre']:.3f})) — {f['fittedOn']['sliceGate']}. "
               + ("Leave-one-series-out pooled slice AUC by CNN share: " + ", ".join(f"{k}: {v:.3f}" for k, v in f['fittedOn']['cnnShareLosoAuc'].items())
                  if 'cnnShareLosoAuc' in f['fittedOn'] else
                  "Pooled slice AUC there by CNN share: " + ", ".join(f"{k}: {v:.3f}" for k, v in f['fittedOn'].get('cnnShareAuc', {}).items()))
               + f"; the gate alone in-sample {f['fittedOn'].get('gateAloneAuc', float('nan')):.3f}")
    out.append(f"- Burden gate: σ({f['burdenGate']['slope']:.3f} · (ln(% opacity + {f['burdenGate']['offsetPercent']:g}) − {f['burdenGate']['centre']:.3f})) — {f['fittedOn']['burdenGate']}")
    out.append(f"- Eligible slices: lung area ≥ {100 * f['eligibility']['minLungFraction']:.0f} % of the series' largest; "
               f"a series whose largest lung area is below {f['eligibility']['minSeriesLungMm2']:g} mm² is not scored")
    out.append(f"- Categories: likely ≥ {f['threshold'] + f['indeterminateMargin']:.2f}, unlikely ≤ "
               f"{f['threshold'] - f['indeterminateMargin']:.2f}, indeterminate between — {f['fittedOn']['thresholds']}")
    out.append("")

    out.append("### CNN: cross-validation (model selection; optimistic)\n")
    cv = m["crossValidation"]
    for k, name in (("covidCt", "COVID-CT train+val, 5 patient-grouped folds"), ("mosmed", "MosMed, 5 folds (one slice per study)"),
                    ("covidCtOfficialVal", "of which the official COVID-CT val split"), ("all", "pooled")):
        r = cv[k]
        out.append(f"- {name}: n = {r['n']}, out-of-fold AUC {f3(r['auc'])} ({f3(r['auc95ci'][0])}–{f3(r['auc95ci'][1])}), "
                   f"accuracy {f3(r['atThreshold']['accuracy'])}, sensitivity {f3(r['atThreshold']['sensitivity'])}, "
                   f"specificity {f3(r['atThreshold']['specificity'])}, ECE {f3(r['calibration']['ece'])}")
    t = m["tta"]
    out.append(f"- Flip test-time augmentation: out-of-fold AUC {f3(t['oofAucLastEpoch'])} → {f3(t['oofAucLastEpochWithFlip'])} "
               f"(gain {t['oofAucGainAtLastEpoch']:+.4f}); {'used' if t['use'] else 'not used'} (rule: gain ≥ 0.005 and a cost "
               f"that fits the budget; {t.get('cost', 'cost not measured')})")
    out.append("- Out-of-fold AUC per epoch (pooled / mean of COVID-CT and MosMed): " + ", ".join(
        f"{r['epoch']}: {r['auc']:.3f} / {r.get('meanSourceAuc', float('nan')):.3f}" for r in m["crossValidationPerEpoch"]))
    tr0 = meta["training"]
    out.append(f"- Rules: {tr0.get('epochsRule', '')}. {tr0.get('epochsRuleHistory') or ''}")
    out.append("")

    out.append("### CNN: COVID-CT official test split (reported once, 8-bit images: CNN alone)\n")
    out.append(split_table("covid-ct test", m["test"]["covidCtOfficialTest"], "cross-validation threshold"))
    tt = m["test"]["covidCtOfficialTest"]
    out.append("| | Accuracy | F1 | AUC |")
    out.append("|---|---|---|---|")
    out.append("| ML-SAM paper (VGG16, reported) | 0.95 | – | – |")
    out.append("| COVID-CT data set baselines (Zhao et al., reported; self-supervised best) | – | ≈ 0.85 | ≈ 0.94 |")
    out.append("| mlsam-mobilenetv2 1.0.0 (body crop, this project) | 0.778 | 0.769 | 0.869 |")
    if meta["version"] not in ("2.0.0", "2.1.0"):
        out.append("| mlsam-mobilenetv2 2.0.0 / 2.1.0 (the same CNN: heads on frozen stride-8 features, lung crop) | 0.778 | 0.762 | 0.882 |")
    cnn_of = meta.get("lineage", {}).get("cnn", "").split(" (")[0].replace("mlsam-mobilenetv2 ", "")
    label = f"CNN of {cnn_of}, " if cnn_of else ""
    out.append(f"| **mlsam-mobilenetv2 {meta['version']}** ({label}lung crop, cross-validation threshold) | {f3(tt['atThreshold']['accuracy'])} | "
               f"{f3(tt['atThreshold']['f1'])} | {f3(tt['auc'])} |")
    out.append("")

    tr = meta["training"]
    out.append("### Training data counts\n")
    out.append("| Group | Source | Images | Positive |")
    out.append("|---|---|---|---|")
    for g, d in tr["counts"].items():
        for src_, c in d.items():
            out.append(f"| {g} | {src_} | {c['n']} | {c['positives']} |")
    out.append("")
    folds = tr.get("crossValidationFolds", [])
    cvmin = sum(x["durationSeconds"] for x in folds) / 60
    lineage = meta.get("lineage", {})
    if lineage.get("cnn"):
        out.append(f"CNN: {lineage['cnn']}.\n")
    if lineage.get("changes"):
        out.append(f"Changes from {lineage.get('previous', 'the previous version')}: {lineage['changes']}\n")
    how = ("every block fine-tuned, online augmentation on every draw" if str(tr.get("frozen", "")).startswith("nothing")
           else "cached stride-8 features")
    out.append(f"Final model: {tr['epochs']} epochs on all dev images, seed {tr['seed']}, {tr['durationSeconds'] / 60:.1f} min "
               f"(≈ {tr['trainImagesPerSecond']} images/s, {how}); cross-validation {len(folds)} folds, "
               f"{cvmin:.0f} min in all. Manifests (sha256):\n")
    for k, v in tr["manifestSha256"].items():
        out.append(f"- `{k}` `{v}`")
    out.append("")
    return "\n".join(out)


def main():
    import sys

    metas = sorted(glob.glob(os.path.join(REPO, "models", "*.json")))
    meta_path = sys.argv[1] if len(sys.argv) > 1 else metas[-1]
    with open(meta_path) as f:
        meta = json.load(f)
    card = os.path.join(REPO, "MODEL_CARD.md")
    with open(card) as f:
        text = f.read()
    block = "<!-- AUTO:BEGIN -->\n" + render(meta) + "<!-- AUTO:END -->"
    text = re.sub(r"<!-- AUTO:BEGIN -->.*<!-- AUTO:END -->", lambda _m: block, text, flags=re.S)
    with open(card, "w") as f:
        f.write(text)
    print("updated", card, "from", meta_path)


if __name__ == "__main__":
    main()

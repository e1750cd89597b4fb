"""Render the numeric sections of MODEL_CARD.md from models/<name>.json (between the AUTO markers)."""
from __future__ import annotations

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def f3(x):
    return "n/a" if x is None or x != x else f"{x:.3f}"


def split_table(name, r):
    t = r["atThreshold"]
    c = t["confusion"]
    h = r["at0.5"]
    lines = [
        f"**{name}** (n = {r['n']}, {r['positives']} positive)",
        "",
        "| Metric | at validation threshold {:.3f} | at 0.5 |".format(t["threshold"]),
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
        "Reliability bins (mean predicted probability → observed fraction positive, n):",
        "",
        "| bin | n | mean prob | frac. positive |",
        "|---|---|---|---|",
    ]
    for b in r["calibration"]["bins"]:
        lines.append(f"| {b['lo']:.1f}–{b['hi']:.1f} | {b['n']} | {b['meanProb']:.3f} | {b['fracPositive']:.3f} |")
    return "\n".join(lines) + "\n"


def render(meta):
    m = meta["metrics"]
    out = ["## Results (generated from the metadata by training/model_card.py)", ""]
    out.append("### Test: COVID-CT official test split (reported once)\n")
    out.append(split_table("covid-ct test", m["test"]["covidCtOfficialTest"]))
    t = m["test"]["covidCtOfficialTest"]
    out.append("### Side by side with published numbers on COVID-CT\n")
    out.append("| | Accuracy | F1 | AUC |")
    out.append("|---|---|---|---|")
    out.append("| ML-SAM paper (VGG16, reported) | 0.95 | – | – |")
    out.append("| COVID-CT data set baselines (Zhao et al., reported) | – | ≈ 0.85 | ≈ 0.94 |")
    out.append(f"| **this model** (MobileNetV2 ML-SAM, validation threshold) | {f3(t['atThreshold']['accuracy'])} | "
               f"{f3(t['atThreshold']['f1'])} | {f3(t['auc'])} |")
    out.append("")
    out.append("### Validation (used for model selection and thresholds — optimistic)\n")
    for k, name in (("covidCtVal", "covid-ct official val"), ("mosmedVal", "mosmed 20 % held-out studies"), ("all", "both")):
        r = m["validation"][k]
        out.append(f"- {name}: n = {r['n']}, AUC {f3(r['auc'])} ({f3(r['auc95ci'][0])}–{f3(r['auc95ci'][1])}), "
                   f"accuracy {f3(r['atThreshold']['accuracy'])}, sensitivity {f3(r['atThreshold']['sensitivity'])}, "
                   f"specificity {f3(r['atThreshold']['specificity'])}, F1 {f3(r['atThreshold']['f1'])}, ECE {f3(r['calibration']['ece'])}")
    out.append("")
    s = meta["series"]
    agg = s["aggregation"]
    out.append("### Series level: COVID-CT-MD (3 real DICOM series, Hounsfield units)\n")
    out.append(f"Aggregation `{agg['method']}`, kFraction {agg['kFraction']}, kMin {agg['kMin']}; series threshold "
               f"{s['threshold']:.3f}, indeterminate margin ±{s['indeterminateMargin']}.\n")
    out.append("| Series | Truth | Slices | k | Series score | Category | Mean slice prob | Slices ≥ threshold | Slice AUC (infection visible) |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for name, r in m["covidCtMd"]["series"].items():
        out.append(f"| {name} | {r['truth']} | {r['slices']} | {r['k']} | {r['score']:.3f} | {r['category']} | "
                   f"{r['meanSliceProb']:.3f} | {r['slicesAboveThreshold']} | {f3(r['sliceAuc'])} |")
    out.append("")
    out.append("Aggregation candidates (series score per kFraction): " + "; ".join(
        f"{k}: " + ", ".join(f"{s_} {v:.3f}" for s_, v in d.items()) for k, d in m["covidCtMd"]["aggregationCandidates"].items()))
    out.append("")
    tr = meta["training"]
    out.append("### Training data counts\n")
    out.append("| Group | Source | Images | Positive |")
    out.append("|---|---|---|---|")
    for g, d in tr["counts"].items():
        for src_, c in d.items():
            out.append(f"| {g} | {src_} | {c['n']} | {c['positives']} |")
    out.append("")
    out.append(f"Training: {tr['epochs']} epochs, seed {tr['seed']}, {tr['durationSeconds'] / 60:.1f} min, "
               f"≈ {tr['trainImagesPerSecond']} images/s ("
               + ("online-augmented images, frozen strides 2-8 run without gradient"
                  if (tr.get("hyperParameters") or {}).get("online_aug") else "cached-feature training step")
               + "). Manifests (sha256):\n")
    for k, v in tr["manifestSha256"].items():
        out.append(f"- `{k}` `{v}`")
    out.append("")
    return "\n".join(out)


def main():
    meta_path = os.path.join(REPO, "models", "mlsam-mobilenetv2-1.0.0.json")
    with open(meta_path) as f:
        meta = json.load(f)
    card = os.path.join(REPO, "MODEL_CARD.md")
    with open(card) as f:
        text = f.read()
    block = "<!-- AUTO:BEGIN -->\n" + render(meta) + "<!-- AUTO:END -->"
    text = re.sub(r"<!-- AUTO:BEGIN -->.*<!-- AUTO:END -->", lambda _m: block, text, flags=re.S)
    with open(card, "w") as f:
        f.write(text)
    print("updated", card)


if __name__ == "__main__":
    main()

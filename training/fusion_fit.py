"""Fitting and validating the fusion (src/model/fusion.ts, method gated-v1) on labelled HU series.

Used by evaluate.py (fits the shipped gates on COVID-CT-MD) and fusion_loso.py (re-checks them from the node's own
`mlsam score --json` output). A series is a dict {"rows": [...], "percentOpacity": float} (series_metrics also needs
"percentHighOpacity" and "lungMl"); a row has cnn (raw CNN probability), lungMm2, opacityMm2, label (infection
visible on the slice) and, for series_metrics, instanceNumber.

  slice gate   logistic fit of the slice labels on ln(opacity mm2 + 10)
  burden gate  rule: centre = mean of ln(% opacity + 0.1) of the normal series and of the less opaque pneumonia
               series; slope such that the normal series maps to 0.1 (needs one of each)
  CNN share    the largest of CNN_SHARES whose leave-one-series-out pooled slice AUC stays within SHARE_TOLERANCE
               of the opacity gate alone (share 0), both with the slice gate refitted without the held-out series.
               (2.0.0 judged the share in-sample; with the gate fitted on two series that rule picked 1.0 once.)
"""
from __future__ import annotations

import math
from typing import Dict

import numpy as np

from metrics import auc, bootstrap_auc_ci

SLICE_OFFSET_MM2, BURDEN_OFFSET_PCT = 10.0, 0.1
CNN_SHARES = (0.25, 0.5, 0.75, 1.0)
SHARE_TOLERANCE = 0.02
K_FRACTION, K_MIN, KEY_SLICES = 0.2, 3, 5


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def logit(p):
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def fit_gate(feature, y, iters=100):
    """y ~ sigmoid(slope * (feature - centre)) by Newton's method on (intercept, slope)."""
    X = np.stack([np.ones_like(feature), feature], 1)
    w = np.zeros(2)
    for _ in range(iters):
        q = sigmoid(X @ w)
        H = (X * (q * (1 - q))[:, None]).T @ X + 1e-6 * np.eye(2)
        step = np.linalg.solve(H, X.T @ (q - y))
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return {"slope": float(w[1]), "centre": float(-w[0] / w[1])}


def arrays(series: Dict[str, dict]):
    rows = [r for s in series.values() for r in s["rows"]]
    y = np.array([r["label"] for r in rows], np.float64)
    op = np.array([r["opacityMm2"] for r in rows], np.float64)
    cnn = np.array([r["cnn"] for r in rows], np.float64)
    return y, op, cnn


def slice_gate(series: Dict[str, dict]) -> dict:
    y, op, _ = arrays(series)
    return fit_gate(np.log(op + SLICE_OFFSET_MM2), y)


def slice_probability(op, cnn, gate: dict, share: float, cal: dict):
    calp = sigmoid(cal["intercept"] + cal["slope"] * logit(cnn))
    g = sigmoid(gate["slope"] * (np.log(np.asarray(op, np.float64) + SLICE_OFFSET_MM2) - gate["centre"]))
    return g * (1 - share + share * calp)


def burden_gate(series: Dict[str, dict]):
    """The burden rule, or None without one normal and one pneumonia series."""
    normals = [s for s in series if s.startswith("normal")]
    pneum = [s for s in series if not s.startswith("normal")]
    if not normals or not pneum:
        return None
    lo_b = math.log(series[normals[0]]["percentOpacity"] + BURDEN_OFFSET_PCT)
    hi_b = math.log(min(series[s]["percentOpacity"] for s in pneum) + BURDEN_OFFSET_PCT)
    centre = (lo_b + hi_b) / 2
    slope = math.log(9) / (centre - lo_b) if centre > lo_b else 1.0
    return {"centre": centre, "slope": slope, "offsetPercent": BURDEN_OFFSET_PCT}


def held_out_gates(series: Dict[str, dict]) -> Dict[str, dict]:
    """For each series, the slice gate fitted on the other series (it does not depend on the CNN share)."""
    return {h: slice_gate({s: v for s, v in series.items() if s != h}) for h in series}


def loso_slices(series: Dict[str, dict], share: float, cal: dict, gates: Dict[str, dict]):
    """Pooled labels and slice probabilities, each series scored by its held-out gate; and the per-series parts."""
    parts = {}
    for h in series:
        y, op, cnn = arrays({h: series[h]})
        parts[h] = (y, slice_probability(op, cnn, gates[h], share, cal))
    return np.concatenate([y for y, _ in parts.values()]), np.concatenate([p for _, p in parts.values()]), parts


def choose_share(series: Dict[str, dict], cal: dict) -> dict:
    """The CNN's share of the slice probability, judged leave-one-series-out (see the module doc)."""
    gates = held_out_gates(series)
    aucs = {w: auc(*loso_slices(series, w, cal, gates)[:2]) for w in (0.0,) + CNN_SHARES}
    ok = [w for w in CNN_SHARES if aucs[w] >= aucs[0.0] - SHARE_TOLERANCE]
    return {"share": max(ok or [0.0]), "losoAuc": {str(k): v for k, v in aucs.items()}}


def loso_report(series: Dict[str, dict], share: float, cal: dict, seed: int = 0) -> dict:
    gates = held_out_gates(series)
    y, p, parts = loso_slices(series, share, cal, gates)
    lo, hi = bootstrap_auc_ci(y, p, n=2000, seed=seed)
    per = {h: {"sliceGate": gates[h], "burdenGateRefitted": burden_gate({s: v for s, v in series.items() if s != h}) is not None,
               "sliceAuc": auc(yh, ph) if yh.max() > yh.min() else None} for h, (yh, ph) in parts.items()}
    return {"method": "leave one series out: slice gate refitted on the other series, CNN share fixed", "share": share,
            "pooledSliceAuc": auc(y, p), "pooledSliceAuc95ci": [lo, hi], "slices": int(len(y)), "perSeries": per}


def topk(n):
    return min(n, max(K_MIN, int(math.ceil(K_FRACTION * n))))


def fuse_series(rows, po, fusion):
    """The node's rule (src/model/fusion.ts) on one series' rows: dicts with cnn, lungMm2, opacityMm2."""
    cal = fusion["cnnCalibration"]
    sg = fusion["sliceGate"]
    bg = fusion["burdenGate"]
    lung = np.array([r["lungMm2"] for r in rows])
    cnn = np.array([r["cnn"] for r in rows])
    op = np.array([r["opacityMm2"] for r in rows])
    calp = sigmoid(cal["intercept"] + cal["slope"] * logit(cnn))
    gate = sigmoid(sg["slope"] * (np.log(op + sg["offsetMm2"]) - sg["centre"]))
    p = gate * (1 - sg["cnnShare"] + sg["cnnShare"] * calp)
    eligible = lung >= fusion["eligibility"]["minLungFraction"] * lung.max()
    ranked = sorted(np.flatnonzero(eligible), key=lambda i: (-p[i], i))
    k = topk(len(ranked))
    cnn_score = float(np.mean(calp[ranked[:k]]))
    burden = float(sigmoid(bg["slope"] * (math.log(po + bg["offsetPercent"]) - bg["centre"])))
    score = burden * cnn_score
    thr, m = fusion["threshold"], fusion["indeterminateMargin"]
    cat = "likely" if score >= thr + m - 1e-9 else "unlikely" if score <= thr - m + 1e-9 else "indeterminate"
    return {"p": p, "eligible": eligible, "k": k, "cnnScore": cnn_score, "burdenGate": burden, "score": score,
            "category": cat, "keySlices": [int(i) for i in ranked[:KEY_SLICES]]}


def loso_series(series: Dict[str, dict], fusion: dict) -> Dict[str, dict]:
    """Each series scored by the fusion with its gates refitted on the other series (the burden gate only where
    the others hold a normal and a pneumonia series; otherwise the given one is kept and the row says so)."""
    out = {}
    for h in series:
        rest = {s: v for s, v in series.items() if s != h}
        f = {**fusion, "sliceGate": {**fusion["sliceGate"], **slice_gate(rest)}}
        bg = burden_gate(rest)
        if bg is not None:
            f["burdenGate"] = bg
        r = fuse_series(series[h]["rows"], series[h]["percentOpacity"], f)
        out[h] = {"score": r["score"], "category": r["category"], "cnnScore": r["cnnScore"],
                  "burdenGate": r["burdenGate"], "burdenGateRefitted": bg is not None}
    return out


def series_metrics(series: Dict[str, dict], fusion: dict, thr: float, margin: float, truth: Dict[str, str]) -> dict:
    """metrics.covidCtMd of the metadata: per series the fused result, the CNN-only top-k mean and category (CNN
    threshold thr +- margin), slice AUCs and key slices; pooled slice AUCs over the series in order."""
    out, ys, ps, cs, os_ = {}, [], [], [], []
    for s, v in series.items():
        rows = v["rows"]
        f = fuse_series(rows, v["percentOpacity"], fusion)
        y = np.array([r["label"] for r in rows])
        cnn = np.array([r["cnn"] for r in rows])
        op = np.array([r["opacityMm2"] for r in rows])
        cnn_only = float(np.sort(cnn)[::-1][:topk(len(rows))].mean())
        both = y.max() > y.min()
        lung_max = max(r["lungMm2"] for r in rows)
        out[s] = {
            "truth": truth[s], "slices": len(rows), "eligibleSlices": int(f["eligible"].sum()), "k": f["k"],
            "percentOpacity": v["percentOpacity"], "percentHighOpacity": v["percentHighOpacity"], "lungMl": v["lungMl"],
            "cnnScore": f["cnnScore"], "burdenGate": f["burdenGate"], "score": f["score"], "category": f["category"],
            "cnnOnlyTopkMean": cnn_only,
            "cnnOnlyCategory": "likely" if cnn_only >= thr + margin else "unlikely" if cnn_only <= thr - margin else "indeterminate",
            "sliceAucFused": auc(y, f["p"]) if both else None, "sliceAucCnn": auc(y, cnn) if both else None,
            "sliceAucOpacity": auc(y, op) if both else None,
            "keySlices": [{"instanceNumber": rows[i]["instanceNumber"], "label": int(y[i]), "p": float(f["p"][i]),
                           "lungFraction": rows[i]["lungMm2"] / lung_max} for i in f["keySlices"]],
        }
        ys += list(y)
        ps += list(f["p"])
        cs += list(cnn)
        os_ += list(op)
    ys, ps = np.array(ys), np.array(ps)
    return {"series": out, "pooledSliceAuc": {"fused": auc(ys, ps), "cnn": auc(ys, cs), "opacity": auc(ys, os_),
                                              "fusedCi": list(bootstrap_auc_ci(ys, ps, 2000, 0))}}

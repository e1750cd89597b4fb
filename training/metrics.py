"""Metrics without sklearn: AUC (Mann-Whitney), bootstrap CI, confusion-matrix metrics, calibration."""
from __future__ import annotations

import numpy as np


def auc(y, p) -> float:
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    n1, n0 = int(y.sum()), int((1 - y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p), np.float64)
    sp = p[order]
    i = 0
    while i < len(p):
        j = i
        while j + 1 < len(p) and sp[j + 1] == sp[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def bootstrap_auc_ci(y, p, n=2000, seed=0, alpha=0.05):
    y = np.asarray(y)
    p = np.asarray(p)
    rng = np.random.RandomState(seed)
    vals = []
    for _ in range(n):
        idx = rng.randint(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            continue
        vals.append(auc(y[idx], p[idx]))
    lo, hi = np.percentile(vals, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def binary(y, p, thr):
    y = np.asarray(y).astype(int)
    pred = (np.asarray(p) >= thr).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    prec = tp / (tp + fp) if tp + fp else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {"threshold": thr, "n": int(len(y)), "accuracy": (tp + tn) / len(y), "sensitivity": sens,
            "specificity": spec, "precision": prec, "f1": f1,
            "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn}}


def calibration(y, p, bins=10):
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    edges = np.linspace(0, 1, bins + 1)
    out, ece = [], 0.0
    for b in range(bins):
        m = (p >= edges[b]) & ((p < edges[b + 1]) if b < bins - 1 else (p <= 1))
        if m.sum() == 0:
            continue
        conf, acc = float(p[m].mean()), float(y[m].mean())
        ece += m.sum() / len(p) * abs(conf - acc)
        out.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int(m.sum()),
                    "meanProb": conf, "fracPositive": acc})
    brier = float(np.mean((p - y) ** 2))
    return {"ece": float(ece), "brier": brier, "bins": out}


def youden_threshold(y, p):
    y = np.asarray(y).astype(int)
    best, thr = -1.0, 0.5
    for t in np.unique(np.round(p, 4)):
        r = binary(y, p, float(t))
        j = r["sensitivity"] + r["specificity"] - 1
        if j > best:
            best, thr = j, float(t)
    return thr

"""How the opacity is distributed: the Python twin of src/model/pattern.ts (per slice), pattern-series.ts (per
series), zones.ts (zones) and pattern-rule.ts (the category). The definitions are documented there and in
docs/pattern-rule.md; this file computes the same numbers the same way (same loop order where floats add up).

  slice_pattern(lung, side, opacity, high, px_mm) -> dict      one slice's summary (masks of lung.analyse_slice)
  series_features(slices, iop, spacing_mm) -> dict             slices: [{"pattern": ..., "position": float|None}]
  categorize(features) -> (category, criteria)
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage as ndi

PATTERN_RULE = "rsna-distribution-v1"
PARAMS = {
    "noOpacityPercent": 0.6, "involvedMl": 1.0, "involvedShare": 0.1, "peripheralShare": 0.65, "peripheralMargin": 0.1,
    "groundGlassShare": 0.5, "withoutGroundGlass": 1 / 3, "multifocal": 3, "round": 0.6, "isolatedShare": 0.6,
    "smallNodules": 3,
}
FOCUS_MIN_ML = ((math.pi / 6) * 10 ** 3) / 1000
ROUNDNESS_MIN_MM2 = 50.0
ZONE_MIN_FRACTION = 0.01
S4 = ndi.generate_binary_structure(2, 1)


# ------------------------------------------------------------------ zones


def lung_zones(areas: Sequence[float], positions: Sequence[Optional[float]]) -> List[str]:
    """Zone per slice for one lung: thirds of its craniocaudal extent (zones.ts lungZones)."""
    n = len(areas)
    mx = max([0.0] + [float(a) for a in areas])
    if not mx > 0:
        return ["middle"] * n
    lo = ZONE_MIN_FRACTION * mx
    idx = [i for i, a in enumerate(areas) if a >= lo]
    first, last = idx[0], idx[-1]
    use_pos = len(positions) == n and all(p is not None and math.isfinite(p) for p in positions)
    coord = (lambda i: float(positions[i])) if use_pos else (lambda i: float(i))
    top = coord(first)
    length = abs(coord(last) - top)
    direction = 1 if coord(last) >= top else -1
    out = []
    for i in range(n):
        if i < first:
            out.append("upper")
        elif i > last:
            out.append("lower")
        elif length == 0:
            out.append("middle")
        else:
            u = (coord(i) - top) * direction
            out.append("upper" if 3 * u < length else "middle" if 3 * u < 2 * length else "lower")
    return out


# ------------------------------------------------------------------ one slice


def roundness(n, sx, sy, sxx, syy, sxy, px_mm) -> float:
    mx, my = sx / n, sy / n
    cx, cy = px_mm[1], px_mm[0]
    a = (sxx / n - mx * mx + 1 / 12) * cx * cx
    c = (syy / n - my * my + 1 / 12) * cy * cy
    b = (sxy / n - mx * my) * cx * cy
    half = (a + c) / 2
    root = math.sqrt(((a - c) / 2) * ((a - c) / 2) + b * b)
    lmax = half + root
    lmin = max(0.0, half - root)
    if not lmax > 0:
        return 0.0
    area = n * cx * cy
    fill = min(1.0, area / (4 * math.pi * math.sqrt(lmin * lmax))) if lmin > 0 else 0.0
    return math.sqrt(lmin / lmax) * fill


def slice_pattern(lung: np.ndarray, side: np.ndarray, opacity: np.ndarray, high: np.ndarray, px_mm: Tuple[float, float]) -> Dict[str, Any]:
    h, w = lung.shape
    out = {"width": w, "height": h, "pxMm2": px_mm[0] * px_mm[1], "lungPx": [0, 0], "lungPeripheralPx": [0, 0],
           "lungInnerPx": [0, 0], "lungLowerHalfPx": [0, 0], "foci": []}
    if not lung.any():
        return out
    s1 = side == 1  # image side per pixel (lung pixels: 0 or 1)
    # squared depth: exact EDT on the mask padded by one background pixel
    d2 = np.rint(ndi.distance_transform_edt(np.pad(lung, 1)) ** 2)[1:-1, 1:-1]
    rows = np.arange(h)[:, None].repeat(w, axis=1)
    dmax = [0.0, 0.0]
    lower = np.zeros((h, w), bool)
    for s in (0, 1):
        sel = lung & (s1 if s else ~s1)
        if sel.any():
            dmax[s] = float(d2[sel].max())
            ys = np.nonzero(sel.any(axis=1))[0]
            lower |= sel & (2 * rows > ys[0] + ys[-1])
    dm = np.where(s1, dmax[1], dmax[0])
    periph = lung & (9 * d2 <= dm)
    inner = lung & (d2 >= 2)
    for s in (0, 1):
        sel = lung & (s1 if s else ~s1)
        out["lungPx"][s] = int(sel.sum())
        out["lungLowerHalfPx"][s] = int((sel & lower).sum())
        out["lungInnerPx"][s] = int((sel & inner).sum())
        out["lungPeripheralPx"][s] = int((sel & inner & periph).sum())
    lab, n = ndi.label(opacity, S4)
    if n == 0:
        return out
    idx = np.arange(1, n + 1)
    flat = lab.ravel()
    cnt = np.bincount(flat, minlength=n + 1).astype(np.float64)

    def per_label(weights):
        return np.bincount(flat, weights=np.asarray(weights, np.float64).ravel(), minlength=n + 1)

    xs = np.arange(w)[None, :].repeat(h, axis=0).astype(np.float64)
    ys = rows.astype(np.float64)
    px1 = per_label(s1)
    hi = per_label(high)
    per = per_label(periph)
    low = per_label(lower)
    sx, sy = per_label(xs), per_label(ys)
    sxx, syy, sxy = per_label(xs * xs), per_label(ys * ys), per_label(xs * ys)
    runs: List[List[int]] = [[] for _ in range(n + 1)]
    for y in range(h):
        row = lab[y]
        if not row.any():
            continue
        padded = np.concatenate(([0], row, [0]))
        ch = np.nonzero(padded[1:] != padded[:-1])[0]  # x where row[x] != row[x - 1] (outside = 0)
        for a, b in zip(ch[:-1], ch[1:]):
            if row[a]:
                runs[int(row[a])].extend([y, int(a), int(b) - 1])
    for l in idx:
        c = cnt[l]
        out["foci"].append({
            "px": [float(c - px1[l]), float(px1[l])], "highPx": float(hi[l]), "peripheralPx": float(per[l]),
            "lowerHalfPx": float(low[l]),
            "roundness": roundness(c, sx[l], sy[l], sxx[l], syy[l], sxy[l], px_mm),
            "runs": runs[l],
        })
    return out


# ------------------------------------------------------------------ series


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        r = x
        while self.parent[r] != r:
            r = self.parent[r]
        while self.parent[x] != r:
            self.parent[x], x = r, self.parent[x]
        return r

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra < rb:
            self.parent[rb] = ra
        elif rb < ra:
            self.parent[ra] = rb


def _share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def series_features(slices: Sequence[Dict[str, Any]], iop: Optional[Sequence[float]], spacing_mm: float) -> Dict[str, Any]:
    """pattern-series.ts seriesPatternFeatures. slices: [{"pattern": slice_pattern(...), "position": mm or None}]."""
    image_left_is_right = iop is None or iop[0] >= 0
    lower_is_dorsal = iop is None or iop[4] >= 0
    side_of = (0, 1) if image_left_is_right else (1, 0)

    def ml(mm2):
        return (mm2 * spacing_mm) / 1000

    positions = [s["position"] for s in slices]
    zones = [lung_zones([s["pattern"]["lungPx"][side] * s["pattern"]["pxMm2"] for s in slices], positions) for side in side_of]
    zone_op = {"upper": 0.0, "middle": 0.0, "lower": 0.0}
    zone_lung = {"upper": 0.0, "middle": 0.0, "lower": 0.0}
    lung = lung_inner = lung_per = lung_dorsal = op = high = per = dorsal = round_w = round_sum = 0.0
    op_side = [0.0, 0.0]
    offsets, total = [], 0
    for s in slices:
        offsets.append(total)
        total += len(s["pattern"]["foci"])
    uf = _UnionFind(total)
    prev_labels = None
    prev_shape = None
    prev_pos = None
    for k, s in enumerate(slices):
        p = s["pattern"]
        a = p["pxMm2"]
        for patient, side in enumerate(side_of):
            z = zones[patient][k]
            lung += p["lungPx"][side] * a
            lung_inner += p["lungInnerPx"][side] * a
            lung_per += p["lungPeripheralPx"][side] * a
            lung_dorsal += (p["lungLowerHalfPx"][side] if lower_is_dorsal else p["lungPx"][side] - p["lungLowerHalfPx"][side]) * a
            zone_lung[z] += p["lungPx"][side] * a
            side_op = 0.0
            for f in p["foci"]:
                side_op += f["px"][side]
            op_side[patient] += side_op * a
            zone_op[z] += side_op * a
        for f in p["foci"]:
            n = f["px"][0] + f["px"][1]
            op += n * a
            high += f["highPx"] * a
            per += f["peripheralPx"] * a
            dorsal += (f["lowerHalfPx"] if lower_is_dorsal else n - f["lowerHalfPx"]) * a
            if n * a >= ROUNDNESS_MIN_MM2:
                round_w += n * a
                round_sum += f["roundness"] * n * a
        shape = (p["height"], p["width"])
        near = prev_pos is None or s["position"] is None or abs(s["position"] - prev_pos) <= 1.5 * spacing_mm
        labels = np.zeros(shape, np.int64)
        if prev_labels is not None and prev_shape == shape and near:
            for j, f in enumerate(p["foci"]):
                r = f["runs"]
                for t in range(0, len(r), 3):
                    for q in np.unique(prev_labels[r[t], r[t + 1]:r[t + 2] + 1]):
                        if q:
                            uf.union(offsets[k] + j, int(q) - 1)
        for j, f in enumerate(p["foci"]):
            r = f["runs"]
            for t in range(0, len(r), 3):
                labels[r[t], r[t + 1]:r[t + 2] + 1] = offsets[k] + j + 1
        prev_labels, prev_shape, prev_pos = labels, shape, s["position"]
    volume: Dict[int, float] = {}
    order: List[int] = []
    for k, s in enumerate(slices):
        for j, f in enumerate(s["pattern"]["foci"]):
            r = uf.find(offsets[k] + j)
            if r not in volume:
                volume[r] = 0.0
                order.append(r)
            volume[r] += (f["px"][0] + f["px"][1]) * s["pattern"]["pxMm2"]
    foci = small = 0
    small_mm2 = largest = 0.0
    for r in order:
        v = volume[r]
        if ml(v) >= FOCUS_MIN_ML:
            foci += 1
        else:
            small += 1
            small_mm2 += v
        largest = max(largest, v)
    return {
        "opacityMl": ml(op), "percentOpacity": 100 * _share(op, lung),
        "groundGlassShare": 1 - high / op if op > 0 else 0.0,
        "rightOpacityMl": ml(op_side[0]), "leftOpacityMl": ml(op_side[1]),
        "minorityLungShare": _share(min(op_side), op),
        "peripheralShare": _share(per, op), "lungPeripheralShare": _share(lung_per, lung_inner),
        "dorsalShare": _share(dorsal, op), "lungDorsalShare": _share(lung_dorsal, lung),
        "zoneShare": {z: _share(zone_op[z], op) for z in ("upper", "middle", "lower")},
        "lungZoneShare": {z: _share(zone_lung[z], lung) for z in ("upper", "middle", "lower")},
        "foci": foci, "smallFoci": small, "smallFociShare": _share(small_mm2, op),
        "largestFocusMl": ml(largest), "largestFocusShare": _share(largest, op),
        "roundness": round_sum / round_w if round_w > 0 else None,
    }


# ------------------------------------------------------------------ rule


def categorize(f: Dict[str, Any]) -> Tuple[str, List[str]]:
    """pattern-rule.ts categorizePattern (the category; the criteria as short names)."""
    p = PARAMS
    if f["percentOpacity"] < p["noOpacityPercent"]:
        return "no-opacity", ["below noOpacityPercent"]

    def involved(v):
        return v >= p["involvedMl"] and v >= p["involvedShare"] * f["opacityMl"]

    bilateral = involved(f["rightOpacityMl"]) and involved(f["leftOpacityMl"])
    peripheral = f["peripheralShare"] >= max(p["peripheralShare"], f["lungPeripheralShare"] + p["peripheralMargin"])
    ggo = f["groundGlassShare"] >= p["groundGlassShare"]
    multifocal = f["foci"] >= p["multifocal"]
    rnd = f["roundness"] is not None and f["roundness"] >= p["round"]
    typical = []
    if bilateral and peripheral and ggo:
        typical.append("bilateral peripheral ground glass")
    if multifocal and rnd and ggo:
        typical.append("multifocal rounded ground glass")
    if typical:
        return "typical", typical
    atypical = []
    if not bilateral and f["groundGlassShare"] < p["withoutGroundGlass"] and f["largestFocusShare"] >= p["isolatedShare"]:
        atypical.append("isolated consolidation")
    if f["foci"] == 0 and f["smallFoci"] >= p["smallNodules"] and f["groundGlassShare"] < p["groundGlassShare"]:
        atypical.append("discrete small nodules")
    if atypical:
        return "atypical", atypical
    return "indeterminate", [("bilateral" if bilateral else "not bilateral"), ("peripheral" if peripheral else "not peripheral")]

"""Lung segmentation and opacity quantification from HU, without weights (Python twin of src/model/lung.ts
and src/model/opacity.ts; parameters in the model metadata `lungs` and `quantification` blocks).

Everything runs on a *working grid*: the slice resampled with the preprocessing's antialiased triangle filter
(preprocess.resize) so that one working pixel is `workMm` mm (never upsampled: a coarser source keeps its own
pixel size). Radii and areas are given in mm / mm² and turned into working pixels once per slice.

Morphology: disk(r) = {(dy, dx) : dy² + dx² <= r²} with r in working pixels (float); dilation = OR of the mask
shifted by every offset, erosion = AND, pixels outside the image count as 0 for both. Connected components:
8-connectivity for the body, 4-connectivity for air, holes and opacity regions; components are numbered in
raster order of their first pixel (scipy.ndimage.label does the same), ties in size go to the lower number.

Lung mask (segment_lungs):
  1. body  = largest 8-connected component of HU > bodyHu, with every hole filled (background components not
     touching the image border: lungs, airways and bowel gas are holes of the body).
  2. air   = HU < airHu inside the body; 4-connected components of area >= minComponentMm2.
  3. gas   = components that are airways or gut, not lung: mostly pure air (a fraction >= gasFraction of their
     pixels below gasHu: trachea, stomach, bowel), or partly so (>= gasFractionSmall) and smaller than
     gasSmallMm2, or smaller than airwayMaxMm2 with their centroid within airwayCentralFraction x the body's
     width of the body's centroid column (trachea, oesophagus). Lung parenchyma (about -850 HU with vessels)
     has few pixels below -950 HU on the working grid.
     A gas component whose surrounding ring (dilation by disk(cavityRingMm), minus the component) lies for at
     least cavityRingFraction on the other components' lung pixels is a bulla or cavity inside a lung: lung.
  4. lungs = the remaining components of area >= relativeMinArea x the largest one.
  5. closing with disk(closeMm) (takes vessels and small juxtavascular opacities in), then bounded hole
     filling: holes up to maxHoleMm2 (vessels, nodules, consolidation surrounded by lung). Unbounded filling
     would swallow the liver dome, which is a hole of the lung at the bases.
  6. sides: lung pixels left of the split column are side 0 (image left), right of it side 1. The split is
     the first column with the fewest lung pixels within ±15 % of the body's width around the body's centroid
     column: the gap between the lungs, or the anterior junction line where they touch.
     `side` is in image terms (0 = image left, 1 = image right); which is the patient's right comes from
     ImageOrientationPatient (the caller's business).

Opacity (quantify): on the lung mask eroded by disk(erodeMm) (the partial-volume rim at the pleura):
  dense  = HU in (highOpacityHu[0], highOpacityHu[1]]
  cons   = opening of dense with disk(consolidationOpenMm)           (blobs; thin vessels drop out)
  vessel = (HU > highOpacityHu[0]) and not cons, dilated by disk(vesselHaloMm)  (vessels and their halo)
  ggo    = opening of (HU in [opacityHu[0], highOpacityHu[0]] and not vessel) with disk(groundGlassOpenMm)
  opacity = 4-connected components of (ggo or cons) with area >= minLesionMm2; high = cons within opacity.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from scipy import ndimage as ndi

from preprocess import PREPROCESSING, triangle_weights

LUNGS: Dict[str, Any] = PREPROCESSING["lungs"]  # defined with the preprocessing (the crop uses it too)

QUANTIFICATION: Dict[str, Any] = {
    "method": "hu-opacity-v1",
    "opacityHu": [-700.0, 50.0],
    "highOpacityHu": [-300.0, 50.0],
    "erodeMm": 1.25,
    "consolidationOpenMm": 2.5,
    "vesselHaloMm": 1.25,
    "groundGlassOpenMm": 1.8,
    "minLesionMm2": 20.0,
    # Thicker slices average vessels into ground-glass HU (partial volume): the ground-glass opening widens with
    # SliceThickness above referenceMm (a simulation of 6 mm slices on COVID-CT-MD doubled the opacity of every
    # series and tripled that of the normal one; training/robustness.py). No SliceThickness: no widening.
    "thickSlice": {"referenceMm": 2.0, "groundGlassOpenMmPerMm": 0.3, "maxGroundGlassOpenMm": 3.6},
}


def ground_glass_open_mm(spec: Dict[str, Any], thickness_mm: Optional[float]) -> float:
    """The ground-glass opening radius for a slice of this thickness (twin: opacity.ts groundGlassOpenMm)."""
    base = float(spec["groundGlassOpenMm"])
    t = spec.get("thickSlice")
    if not t or thickness_mm is None or not thickness_mm > 0:
        return base
    extra = float(t["groundGlassOpenMmPerMm"]) * max(0.0, float(thickness_mm) - float(t["referenceMm"]))
    return min(max(base, float(t["maxGroundGlassOpenMm"])), base + extra)

S4 = ndi.generate_binary_structure(2, 1)
S8 = ndi.generate_binary_structure(2, 2)


# ------------------------------------------------------------------ grid


def work_size(h: int, w: int, spacing: Tuple[float, float], work_mm: float) -> Tuple[int, int]:
    """Working grid size: round(n * spacing / workMm), never larger than the source, at least 1."""
    hh = max(1, min(h, int(round(h * spacing[0] / work_mm))))
    ww = max(1, min(w, int(round(w * spacing[1] / work_mm))))
    return hh, ww


def to_work(hu: np.ndarray, spacing: Tuple[float, float], spec: Dict[str, Any] = LUNGS):
    """Returns (working HU float64, working pixel size (row mm, col mm))."""
    h, w = hu.shape
    hh, ww = work_size(h, w, spacing, float(spec["workMm"]))
    a = np.asarray(hu, dtype=np.float64)
    if (hh, ww) != (h, w):
        a = triangle_weights(h, hh) @ a @ triangle_weights(w, ww).T
    return a, (spacing[0] * h / hh, spacing[1] * w / ww)


# ------------------------------------------------------------------ morphology


# Radii are mm / (mm per working pixel), and the working pixel is workMm only up to the rounding of the grid size
# (±0.25 % with the field of view: 302 mm -> 1.2479, 383 mm -> 1.2516 mm). 1.25 mm and 2.5 mm at 1.25 mm/px are
# whole pixels, so without slack a field of view decided whether the 1-px erosion and vessel halo happened at all.
# A disc therefore includes the offsets up to RADIUS_SLACK x r (twin: morphology.ts RADIUS_SLACK).
RADIUS_SLACK = 1.005


def disk_offsets(r: float) -> List[Tuple[int, int]]:
    r = r * RADIUS_SLACK
    R = int(math.floor(r + 1e-9))
    return [(dy, dx) for dy in range(-R, R + 1) for dx in range(-R, R + 1) if dy * dy + dx * dx <= r * r + 1e-9]


def _shift(m: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """out[y, x] = m[y + dy, x + dx] (0 outside)."""
    h, w = m.shape
    out = np.zeros_like(m)
    ys, yd = slice(max(0, dy), h + min(0, dy)), slice(max(0, -dy), h + min(0, -dy))
    xs, xd = slice(max(0, dx), w + min(0, dx)), slice(max(0, -dx), w + min(0, -dx))
    out[yd, xd] = m[ys, xs]
    return out


def disk_structure(r: float) -> np.ndarray:
    R = int(math.floor(r * RADIUS_SLACK + 1e-9))
    st = np.zeros((2 * R + 1, 2 * R + 1), bool)
    for dy, dx in disk_offsets(r):
        st[dy + R, dx + R] = True
    return st


def dilate(m: np.ndarray, r: float) -> np.ndarray:
    """OR of m shifted by every disk offset (0 outside); the disk is symmetric, so this is ndimage's dilation."""
    if r * RADIUS_SLACK < 1:
        return m.copy()
    return ndi.binary_dilation(m, structure=disk_structure(r), border_value=0)


def erode(m: np.ndarray, r: float) -> np.ndarray:
    """AND of m shifted by every disk offset, pixels outside the image count as 0."""
    if r * RADIUS_SLACK < 1:
        return m.copy()
    return ndi.binary_erosion(m, structure=disk_structure(r), border_value=0)


def dilate_reference(m: np.ndarray, r: float) -> np.ndarray:
    """The definition, by shifts (tests compare it with dilate)."""
    out = np.zeros_like(m)
    for dy, dx in disk_offsets(r):
        out |= _shift(m, dy, dx)
    return out


def closing(m: np.ndarray, r: float) -> np.ndarray:
    return erode(dilate(m, r), r)


def opening(m: np.ndarray, r: float) -> np.ndarray:
    return dilate(erode(m, r), r)


def _border_labels(lab: np.ndarray) -> np.ndarray:
    return np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))


def fill_holes(m: np.ndarray, max_px: Optional[float] = None) -> np.ndarray:
    """Fill background 4-components not touching the border (only those of <= max_px pixels when given)."""
    lab, n = ndi.label(~m, S4)
    if n == 0:
        return m.copy()
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    ok = np.ones(n + 1, bool)
    ok[0] = False
    ok[_border_labels(lab)] = False
    if max_px is not None:
        ok &= sizes <= max_px
    return m | ok[lab]


def remove_small(m: np.ndarray, min_px: float) -> np.ndarray:
    lab, n = ndi.label(m, S4)
    if n == 0:
        return m.copy()
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    ok = sizes >= min_px
    ok[0] = False
    return ok[lab]


# ------------------------------------------------------------------ lungs


def segment_lungs(hu_w: np.ndarray, px_mm: Tuple[float, float], spec: Dict[str, Any] = LUNGS) -> Dict[str, Any]:
    """Lung mask on the working grid. Returns {'lung': bool [h,w], 'side': int8 [h,w] (-1 none, 0 image left,
    1 image right), 'body': bool, 'components': [...]}."""
    h, w = hu_w.shape
    px_area = px_mm[0] * px_mm[1]
    r_px = math.sqrt(px_mm[0] * px_mm[1])  # mm per working pixel (isotropic enough for radii)
    empty = {"lung": np.zeros((h, w), bool), "side": np.full((h, w), -1, np.int8), "body": np.zeros((h, w), bool), "components": []}
    lab, n = ndi.label(hu_w > float(spec["bodyHu"]), S8)
    if n == 0:
        return empty
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    sizes[0] = 0
    body = fill_holes(lab == int(np.argmax(sizes)))
    air = (hu_w < float(spec["airHu"])) & body
    lab, n = ndi.label(air, S4)
    if n == 0:
        empty["body"] = body
        return empty
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    gas_cnt = np.bincount(lab.ravel(), weights=(hu_w < float(spec["gasHu"])).ravel().astype(np.float64), minlength=n + 1)
    comps = []
    for i in range(1, n + 1):
        area = sizes[i] * px_area
        if area < float(spec["minComponentMm2"]):
            continue
        gas = gas_cnt[i] / sizes[i]
        comps.append({"label": i, "areaMm2": float(area), "gasFraction": float(gas)})
    if comps:
        ys, xs = np.nonzero(body)
        bx, bw = float(xs.mean()), float(xs.max() - xs.min() + 1)
        cx = ndi.sum_labels(np.broadcast_to(np.arange(w, dtype=np.float64)[None, :], (h, w)), lab, [c["label"] for c in comps])
        for c, sx in zip(comps, cx):
            c["centreX"] = float(sx) / (c["areaMm2"] / px_area)
            central = abs(c["centreX"] - bx) < float(spec["airwayCentralFraction"]) * bw
            c["gas"] = bool(
                c["gasFraction"] >= float(spec["gasFraction"])
                or (c["gasFraction"] >= float(spec["gasFractionSmall"]) and c["areaMm2"] < float(spec["gasSmallMm2"]))
                or (central and c["areaMm2"] < float(spec["airwayMaxMm2"]))
            )
    other = np.zeros(n + 1, bool)
    for c in comps:
        if not c["gas"]:
            other[c["label"]] = True
    for _ in range(int(spec["cavityRounds"])):
        parenchyma = other[lab]
        changed = False
        for c in comps:
            if c["gas"] and parenchyma.any():
                m = lab == c["label"]
                ring = dilate(m, float(spec["cavityRingMm"]) / r_px) & ~m
                frac = float((ring & parenchyma).sum()) / max(1, int(ring.sum()))
                if frac >= float(spec["cavityRingFraction"]):
                    c["gas"] = False
                    c["cavity"] = True
                    other[c["label"]] = True
                    changed = True
        if not changed:
            break
    lung_c = [c for c in comps if not c["gas"]]
    if not lung_c:
        empty["body"] = body
        empty["components"] = comps
        return empty
    biggest = max(c["areaMm2"] for c in lung_c)
    keep = [c for c in lung_c if c["areaMm2"] >= float(spec["relativeMinArea"]) * biggest]
    keep_ok = np.zeros(n + 1, bool)
    for c in keep:
        keep_ok[c["label"]] = True
        c["kept"] = True
    raw = keep_ok[lab]
    lung = closing(raw, float(spec["closeMm"]) / r_px)
    lung = fill_holes(lung, float(spec["maxHoleMm2"]) / px_area)
    lung &= body
    side = assign_sides(lung, body)
    return {"lung": lung, "side": side, "body": body, "components": comps}


def split_column(lung: np.ndarray, body: np.ndarray) -> float:
    """Image-left / image-right boundary (step 6): the first column with the fewest lung pixels within +-15 % of
    the body's width around the body's centroid column; returned as that column + 0.5."""
    w = lung.shape[1]
    ys, xs = np.nonzero(body)
    bx = float(xs.mean())
    half = 0.15 * float(xs.max() - xs.min() + 1)
    lo, hi = max(0, int(math.ceil(bx - half))), min(w - 1, int(math.floor(bx + half)))
    if hi < lo:
        return bx
    cnt = lung[:, lo:hi + 1].sum(axis=0)
    return float(lo + int(np.argmin(cnt))) + 0.5


def assign_sides(lung: np.ndarray, body: np.ndarray) -> np.ndarray:
    side = np.full(lung.shape, -1, np.int8)
    if not lung.any():
        return side
    split = split_column(lung, body)
    cols = np.broadcast_to(np.arange(lung.shape[1])[None, :], lung.shape)
    side[lung & (cols < split)] = 0
    side[lung & (cols > split)] = 1
    return side


# ------------------------------------------------------------------ opacity


def quantify(hu_w: np.ndarray, lung: np.ndarray, px_mm: Tuple[float, float], spec: Dict[str, Any] = QUANTIFICATION,
             thickness_mm: Optional[float] = None):
    """Opacity masks on the working grid: returns (opacity bool, high bool)."""
    r_px = math.sqrt(px_mm[0] * px_mm[1])
    px_area = px_mm[0] * px_mm[1]
    lo, hi = float(spec["opacityHu"][0]), float(spec["opacityHu"][1])
    hlo, hhi = float(spec["highOpacityHu"][0]), float(spec["highOpacityHu"][1])
    le = erode(lung, float(spec["erodeMm"]) / r_px)
    dense = le & (hu_w > hlo) & (hu_w <= hhi)
    cons = opening(dense, float(spec["consolidationOpenMm"]) / r_px)
    vessel = dilate(le & (hu_w > hlo) & ~cons, float(spec["vesselHaloMm"]) / r_px)
    ggo = opening(le & (hu_w >= lo) & (hu_w <= hlo) & ~vessel, ground_glass_open_mm(spec, thickness_mm) / r_px)
    opacity = remove_small(ggo | cons, float(spec["minLesionMm2"]) / px_area)
    return opacity, cons & opacity


def analyse_slice(hu: np.ndarray, spacing: Tuple[float, float], lungs_spec=LUNGS, quant_spec=QUANTIFICATION,
                  thickness_mm: Optional[float] = None) -> Dict[str, Any]:
    """Everything per slice: working grid, masks and areas (mm²) per side (thickness_mm: SliceThickness, or None)."""
    hu_w, px = to_work(hu, spacing, lungs_spec)
    seg = segment_lungs(hu_w, px, lungs_spec)
    op, high = quantify(hu_w, seg["lung"], px, quant_spec, thickness_mm)
    a = px[0] * px[1]
    side = seg["side"]
    out = {"work": hu_w, "px": px, "lung": seg["lung"], "side": side, "opacity": op, "high": high, "body": seg["body"]}
    for name, sel in (("total", seg["lung"]), ("s0", side == 0), ("s1", side == 1)):
        out[name] = {"lungMm2": float(sel.sum() * a), "opacityMm2": float((op & sel).sum() * a), "highMm2": float((high & sel).sum() * a)}
    return out


def lung_bbox(lung: np.ndarray):
    """Inclusive (y0, y1, x0, x1) of a mask, or None."""
    ys = np.nonzero(lung.any(axis=1))[0]
    xs = np.nonzero(lung.any(axis=0))[0]
    if ys.size == 0:
        return None
    return int(ys[0]), int(ys[-1]), int(xs[0]), int(xs[-1])

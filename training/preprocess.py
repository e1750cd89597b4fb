"""The single preprocessing definition of mlsam-mobilenetv2 (Python twin of src/model/preprocess.ts).

Steps (all in float64, output float32):
  1. to [0,1]:  kind 'hu'      -> clamp((HU - (center - width/2)) / width, 0, 1)   (lung window)
                kind 'display' -> gray / 255   (8-bit gray, already windowed; RGB -> ITU-R 601 luma by the caller)
  2. crop box, method 'lung-bbox' (since 2.0.0): the bounding box of the lung mask of lung.py (segment_lungs on
     the working grid of lung.to_work), mapped back to source pixels (working row y covers source rows
     [floor(y*H/h), ceil((y+1)*H/h) - 1]), grown by m = floor(lungMarginFraction * max(box height, box width))
     pixels per side, clipped to the image. Display images have no HU: they are mapped back through the lung
     window (pseudo-HU = center - width/2 + v * width) and given a nominal pixel size of displayFovMm / max(H, W).
     An HU slice without PixelSpacing, a lung mask of less than minLungMm2, or the image is a display image that does not show both lungs
     (display_lungs_plausible: figure crops of one lung or of a detail), the body box below is used instead.
     Method 'body-bbox' (1.x, and the fallback): mask = v > crop.threshold; rowFrac[y] = mean over x of mask,
     colFrac[x] = mean over y. y0/y1 = first/last row with rowFrac >= minFraction (same for columns). If none,
     or the box is smaller than minSizeFraction of the image in either direction, keep the whole image.
     Otherwise grow the box by m = floor(marginFraction * max(H, W)) pixels on every side, clipped to the image.
  3. resize the crop to 224x224 (aspect ratio NOT kept) with a separable antialiased triangle filter:
     per axis, scale s = n_in / n_out, support r = max(s, 1); output i has centre c = (i + 0.5) * s and
     weights w_j = max(0, 1 - |j + 0.5 - c| / r) over source pixels j, normalised to sum 1.
     Rows first then columns (order does not matter mathematically).
  4. normalise (x - mean) / std and repeat to 3 channels (NCHW slice, C*H*W floats).
"""
from __future__ import annotations

import math
from typing import Any, Dict

import numpy as np

PREPROCESSING: Dict[str, Any] = {
    "window": {"center": -600.0, "width": 1500.0},
    "display": {"scale": 255.0},
    "crop": {
        "method": "lung-bbox",
        "threshold": 0.5,
        "minFraction": 0.1,
        "marginFraction": 0.02,
        "minSizeFraction": 0.25,
        "lungMarginFraction": 0.06,
        "minLungMm2": 1500.0,
        "displayFovMm": 350.0,
    },
    # lung segmentation (training/lung.py segment_lungs; twin src/model/lung.ts): used by the crop and by the
    # opacity quantification
    "lungs": {
        "method": "hu-threshold-2d-v1",
        "workMm": 1.25,
        "bodyHu": -500.0,
        "airHu": -400.0,
        "minComponentMm2": 50.0,
        "gasHu": -950.0,
        "gasFraction": 0.3,
        "gasFractionSmall": 0.1,
        "gasSmallMm2": 1000.0,
        "airwayMaxMm2": 600.0,
        "airwayCentralFraction": 0.1,
        "relativeMinArea": 0.02,
        "cavityRingMm": 3.0,
        "cavityRingFraction": 0.5,
        "cavityRounds": 4,
        "closeMm": 3.0,
        "maxHoleMm2": 400.0,
    },
    "resize": {"method": "triangle-antialias", "width": 224, "height": 224, "keepAspect": False},
    "normalize": {"mean": 0.5, "std": 0.5},
    "channels": 3,
    "layout": "CHW",
}


def to_unit(img: np.ndarray, kind: str, spec: Dict[str, Any] = PREPROCESSING) -> np.ndarray:
    a = np.asarray(img, dtype=np.float64)
    if kind == "hu":
        c = float(spec["window"]["center"])
        w = float(spec["window"]["width"])
        lo = c - w / 2.0
        return np.clip((a - lo) / w, 0.0, 1.0)
    if kind == "display":
        return np.clip(a / float(spec["display"]["scale"]), 0.0, 1.0)
    raise ValueError(f"unknown kind {kind!r}")


def crop_box(v: np.ndarray, spec: Dict[str, Any] = PREPROCESSING):
    """Body box (method 'body-bbox', and the fallback of 'lung-bbox'): returns (y0, y1, x0, x1) inclusive."""
    h, w = v.shape
    cs = spec["crop"]
    if cs is None or cs.get("method") in (None, "none"):
        return 0, h - 1, 0, w - 1
    mask = v > float(cs["threshold"])
    cnt_r = mask.sum(axis=1)
    cnt_c = mask.sum(axis=0)
    mf = float(cs["minFraction"])
    rows = np.nonzero(cnt_r / w >= mf)[0]
    cols = np.nonzero(cnt_c / h >= mf)[0]
    if rows.size == 0 or cols.size == 0:
        return 0, h - 1, 0, w - 1
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    ms = float(cs["minSizeFraction"])
    if (y1 - y0 + 1) < ms * h or (x1 - x0 + 1) < ms * w:
        return 0, h - 1, 0, w - 1
    m = int(math.floor(float(cs["marginFraction"]) * max(h, w)))
    return max(0, y0 - m), min(h - 1, y1 + m), max(0, x0 - m), min(w - 1, x1 + m)


def hu_for_lungs(img: np.ndarray, kind: str, spacing, spec: Dict[str, Any] = PREPROCESSING):
    """(HU image, pixel spacing) the lung mask is computed from: the HU themselves, or pseudo-HU of a display image."""
    a = np.asarray(img, dtype=np.float64)
    if kind == "hu":
        if spacing is None:
            raise ValueError("HU slices need their pixel spacing")
        return a, (float(spacing[0]), float(spacing[1]))
    c = float(spec["window"]["center"])
    w = float(spec["window"]["width"])
    v = np.clip(a / float(spec["display"]["scale"]), 0.0, 1.0)
    px = float(spec["crop"]["displayFovMm"]) / max(a.shape)
    return c - w / 2.0 + v * w, (px, px)


def display_lungs_plausible(lung: np.ndarray, side: np.ndarray, box, spec: Dict[str, Any] = PREPROCESSING) -> bool:
    """A display image (figure crop, screenshot) gets the lung box only when it shows both lungs: the box spans
    at least 40 % of the image's width and minSizeFraction of its height, and each side of lung.py's split
    column holds at least 15 % of the lung pixels. Otherwise it is a partial view and the body box is safer."""
    hh, ww = lung.shape
    y0, y1, x0, x1 = box
    if (y1 - y0 + 1) < float(spec["crop"]["minSizeFraction"]) * hh or (x1 - x0 + 1) < 0.4 * ww:
        return False
    total = float(lung.sum())
    return min(float((side == 0).sum()), float((side == 1).sum())) >= 0.15 * total


def lung_crop_box(img: np.ndarray, kind: str, spacing=None, spec: Dict[str, Any] = PREPROCESSING, analysis=None):
    """Crop box of method 'lung-bbox' (step 2). Returns ((y0, y1, x0, x1), used) with used = 'lung' or 'body'.
    `analysis` (lung.analyse_slice of the same slice) is reused when given."""
    from lung import segment_lungs, to_work, lung_bbox  # noqa: E402 (lung imports this module)

    cs = spec["crop"]
    v = to_unit(img, kind, spec)
    h, w = v.shape
    if analysis is None:
        if kind == "hu" and spacing is None:
            return crop_box(v, spec), "body"  # no mm scale: the lung rules cannot apply
        hu, px0 = hu_for_lungs(img, kind, spacing, spec)
        hu_w, px = to_work(hu, px0, spec["lungs"])
        seg = segment_lungs(hu_w, px, spec["lungs"])
        lung, side = seg["lung"], seg["side"]
    else:
        lung, side, px = analysis["lung"], analysis["side"], analysis["px"]
    box = lung_bbox(lung)
    area = float(lung.sum()) * px[0] * px[1]
    hh, ww = lung.shape
    if box is None or area < float(cs["minLungMm2"]):
        return crop_box(v, spec), "body"
    if kind == "display" and not display_lungs_plausible(lung, side, box, spec):
        return crop_box(v, spec), "body"
    y0 = int(math.floor(box[0] * h / hh))
    y1 = int(math.ceil((box[1] + 1) * h / hh)) - 1
    x0 = int(math.floor(box[2] * w / ww))
    x1 = int(math.ceil((box[3] + 1) * w / ww)) - 1
    m = int(math.floor(float(cs["lungMarginFraction"]) * max(y1 - y0 + 1, x1 - x0 + 1)))
    return (max(0, y0 - m), min(h - 1, y1 + m), max(0, x0 - m), min(w - 1, x1 + m)), "lung"


def triangle_weights(n_in: int, n_out: int) -> np.ndarray:
    s = n_in / n_out
    r = max(s, 1.0)
    j = np.arange(n_in, dtype=np.float64) + 0.5
    c = (np.arange(n_out, dtype=np.float64) + 0.5) * s
    wts = np.maximum(0.0, 1.0 - np.abs(j[None, :] - c[:, None]) / r)
    wts /= wts.sum(axis=1, keepdims=True)
    return wts


def resize(v: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    wy = triangle_weights(v.shape[0], out_h)
    wx = triangle_weights(v.shape[1], out_w)
    return wy @ v @ wx.T


def preprocess_unit(img: np.ndarray, kind: str, spec: Dict[str, Any] = PREPROCESSING, spacing=None, analysis=None) -> np.ndarray:
    """Steps 1-3: returns the 224x224 image in [0,1] (float64)."""
    return preprocess_unit_box(img, kind, spec, spacing, analysis)[0]


def preprocess_unit_box(img: np.ndarray, kind: str, spec: Dict[str, Any] = PREPROCESSING, spacing=None, analysis=None):
    """Steps 1-3 and the crop box used: (unit image, (y0, y1, x0, x1), 'lung' | 'body' | 'none')."""
    v = to_unit(img, kind, spec)
    method = (spec.get("crop") or {}).get("method")
    if method == "lung-bbox":
        box, used = lung_crop_box(img, kind, spacing, spec, analysis)
    else:
        box, used = crop_box(v, spec), ("body" if method == "body-bbox" else "none")
    y0, y1, x0, x1 = box
    v = v[y0 : y1 + 1, x0 : x1 + 1]
    return resize(v, int(spec["resize"]["height"]), int(spec["resize"]["width"])), box, used


def normalize(u: np.ndarray, spec: Dict[str, Any] = PREPROCESSING) -> np.ndarray:
    """[..., H, W] in [0,1] -> [..., C, H, W] float32 normalised."""
    mean = float(spec["normalize"]["mean"])
    std = float(spec["normalize"]["std"])
    x = (np.asarray(u, dtype=np.float64) - mean) / std
    x = np.repeat(x[..., None, :, :], int(spec["channels"]), axis=-3)
    return x.astype(np.float32)


def preprocess_slice(img: np.ndarray, kind: str, spec: Dict[str, Any] = PREPROCESSING, spacing=None) -> np.ndarray:
    """Full definition: returns float32 [3, 224, 224]."""
    return normalize(preprocess_unit(img, kind, spec, spacing), spec)


# ---------------------------------------------------------------- loaders


def load_display(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.uint8)


def load_hu(path: str):
    """Returns (HU array float64, dataset); the pixel spacing is pixel_spacing(ds)."""
    import pydicom

    ds = pydicom.dcmread(path)
    a = ds.pixel_array.astype(np.float64)
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    inter = float(getattr(ds, "RescaleIntercept", 0) or 0)
    return a * slope + inter, ds


def slice_thickness(ds):
    """SliceThickness in mm, or None when absent or not positive (twin: header.ts sliceThickness)."""
    try:
        t = float(getattr(ds, "SliceThickness", None))
    except (TypeError, ValueError):
        return None
    return t if t > 0 and math.isfinite(t) else None


def pixel_spacing(ds):
    """(row spacing, column spacing) in mm from PixelSpacing; None when absent."""
    ps = getattr(ds, "PixelSpacing", None)
    if ps is None or len(ps) < 2:
        return None
    return float(ps[0]), float(ps[1])

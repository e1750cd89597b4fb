"""The single preprocessing definition of mlsam-mobilenetv2 (Python twin of src/model/preprocess.ts).

Steps (all in float64, output float32):
  1. to [0,1]:  kind 'hu'      -> clamp((HU - (center - width/2)) / width, 0, 1)   (lung window)
                kind 'display' -> gray / 255   (8-bit gray, already windowed; RGB -> ITU-R 601 luma by the caller)
  2. body crop: mask = v > crop.threshold; rowFrac[y] = mean over x of mask, colFrac[x] = mean over y.
     y0/y1 = first/last row with rowFrac >= minFraction (same for columns). If none, or the box is smaller
     than minSizeFraction of the image in either direction, keep the whole image. Otherwise grow the box by
     m = floor(marginFraction * max(H, W)) pixels on every side, clipped to the image.
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
        "method": "body-bbox",
        "threshold": 0.5,
        "minFraction": 0.1,
        "marginFraction": 0.02,
        "minSizeFraction": 0.25,
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
    """Returns (y0, y1, x0, x1) inclusive."""
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


def preprocess_unit(img: np.ndarray, kind: str, spec: Dict[str, Any] = PREPROCESSING) -> np.ndarray:
    """Steps 1-3: returns the 224x224 image in [0,1] (float64)."""
    v = to_unit(img, kind, spec)
    y0, y1, x0, x1 = crop_box(v, spec)
    v = v[y0 : y1 + 1, x0 : x1 + 1]
    return resize(v, int(spec["resize"]["height"]), int(spec["resize"]["width"]))


def normalize(u: np.ndarray, spec: Dict[str, Any] = PREPROCESSING) -> np.ndarray:
    """[..., H, W] in [0,1] -> [..., C, H, W] float32 normalised."""
    mean = float(spec["normalize"]["mean"])
    std = float(spec["normalize"]["std"])
    x = (np.asarray(u, dtype=np.float64) - mean) / std
    x = np.repeat(x[..., None, :, :], int(spec["channels"]), axis=-3)
    return x.astype(np.float32)


def preprocess_slice(img: np.ndarray, kind: str, spec: Dict[str, Any] = PREPROCESSING) -> np.ndarray:
    """Full definition: returns float32 [3, 224, 224]."""
    return normalize(preprocess_unit(img, kind, spec), spec)


# ---------------------------------------------------------------- loaders


def load_display(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.uint8)


def load_hu(path: str):
    """Returns (HU array float64, dataset)."""
    import pydicom

    ds = pydicom.dcmread(path)
    a = ds.pixel_array.astype(np.float64)
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    inter = float(getattr(ds, "RescaleIntercept", 0) or 0)
    return a * slope + inter, ds

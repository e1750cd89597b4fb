"""Data index, splits and caches.

Splits (fixed, seed 0):
  train: covid-ct official 'train' + all of sars-cov-2-ct + mosmed 80 % (stratified by severity)
  val:   covid-ct official 'val' + mosmed 20 %            (model selection, slice threshold)
  test:  covid-ct official 'test'                          (reported once)
  ctmd:  COVID-CT-MD P001 / cap001 / normal001, all slices, HU (series-level validation / sanity only;
         never trained on)
Caches (training/cache/, gitignored):
  units_<group>.npy   float16 [N,224,224] preprocessed images in [0,1] (steps 1-3 of preprocess.py)
  feats_<group>.npz   float16 l8 [N,32,28,28], l16 [N,96,14,14] from the frozen backbone part
  index_<group>.json  items (source, file, label, ...)
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
import time
from typing import Dict, List

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from preprocess import load_display, load_hu, preprocess_unit  # noqa: E402

REPO = os.path.dirname(HERE)
DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
CACHE = os.path.join(HERE, "cache")

MANIFESTS = [
    "covid-ct/split.csv",
    "covid-ct/patients.csv",
    "covid-ct/images.csv",
    "sars-cov-2-ct/labels.csv",
    "sars-cov-2-ct/images.csv",
    "mosmed/labels.csv",
    "covid-ct-md/slice_labels.csv",
    "pretrained/mobilenet_v2_imagenet_coral.npz",
]


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest_hashes() -> Dict[str, str]:
    return {m: sha256(os.path.join(DATA, m)) for m in MANIFESTS}


def _csv(path: str) -> List[dict]:
    with open(os.path.join(DATA, path), newline="") as f:
        return list(csv.DictReader(f))


def build_index() -> Dict[str, List[dict]]:
    groups: Dict[str, List[dict]] = {"train": [], "val": [], "test": [], "ctmd": []}
    for r in _csv("covid-ct/split.csv"):
        groups[r["split"]].append(
            {"source": "covid-ct", "file": "covid-ct/" + r["file"], "label": int(r["label"]), "kind": "display"}
        )
    for r in _csv("sars-cov-2-ct/labels.csv"):
        groups["train"].append(
            {"source": "sars-cov-2-ct", "file": "sars-cov-2-ct/" + r["file"], "label": int(r["label"]), "kind": "display"}
        )
    rng = np.random.RandomState(0)
    mos = _csv("mosmed/labels.csv")
    by_sev: Dict[str, List[dict]] = {}
    for r in mos:
        by_sev.setdefault(r["severity"], []).append(r)
    for sev in sorted(by_sev):
        rows = sorted(by_sev[sev], key=lambda r: r["file"])
        perm = rng.permutation(len(rows))
        n_val = int(round(0.2 * len(rows)))
        for k, i in enumerate(perm):
            r = rows[i]
            item = {"source": "mosmed", "file": "mosmed/" + r["file"], "label": int(r["label"]),
                    "kind": "display", "severity": sev}
            groups["val" if k < n_val else "train"].append(item)
    for r in _csv("covid-ct-md/slice_labels.csv"):
        pass
    # COVID-CT-MD: label rows exist for P001 and cap001; normal001 slices are all 0.
    labels = {(r["series"], r["SOPInstanceUID"]): int(r["label"]) for r in _csv("covid-ct-md/slice_labels.csv")}
    import pydicom

    for series in ("P001", "cap001", "normal001"):
        d = os.path.join(DATA, "covid-ct-md", series)
        for fn in sorted(os.listdir(d)):
            ds = pydicom.dcmread(os.path.join(d, fn), stop_before_pixels=True)
            uid = str(ds.SOPInstanceUID)
            groups["ctmd"].append({
                "source": "covid-ct-md", "file": f"covid-ct-md/{series}/{fn}", "series": series,
                "sopInstanceUid": uid, "instanceNumber": int(ds.InstanceNumber),
                "label": labels.get((series, uid), 0), "kind": "hu",
                "seriesLabel": 1 if series == "P001" else 0, "infection": 0 if series == "normal001" else 1,
            })
    return groups


def load_unit(item: dict, aug_rng=None) -> np.ndarray:
    path = os.path.join(DATA, item["file"])
    if item["kind"] == "hu":
        hu, _ = load_hu(path)
        return preprocess_unit(hu, "hu")
    img = load_display(path)
    if aug_rng is not None:
        img = source_augment(img, aug_rng)
    return preprocess_unit(img, "display")


def source_augment(img: np.ndarray, rng) -> np.ndarray:
    """Augmentations of the 8-bit source so JPEG/format/blur are not class cues."""
    from PIL import Image, ImageFilter

    im = Image.fromarray(img)
    if rng.rand() < 0.35:
        im = im.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.2))))
    if rng.rand() < 0.6:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=int(rng.randint(30, 96)))
        buf.seek(0)
        im = Image.open(buf).convert("L")
    return np.asarray(im, dtype=np.uint8)


def unit_augment(u: np.ndarray, rng) -> np.ndarray:
    """Geometric + intensity augmentation of a 224x224 [0,1] image (torch affine grid, bilinear)."""
    import torch
    import torch.nn.functional as F

    ang = np.deg2rad(rng.uniform(-10, 10))
    sc = rng.uniform(0.88, 1.12)
    tx, ty = rng.uniform(-0.06, 0.06, size=2)
    flip = -1.0 if rng.rand() < 0.5 else 1.0
    cos, sin = np.cos(ang) / sc, np.sin(ang) / sc
    theta = torch.tensor([[[cos * flip, -sin, tx], [sin * flip, cos, ty]]], dtype=torch.float32)
    x = torch.from_numpy(u.astype(np.float32))[None, None]
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)[0, 0].numpy()
    gamma = float(np.exp(rng.uniform(-0.25, 0.25)))
    y = np.clip(y, 0, 1) ** gamma
    c = rng.uniform(0.85, 1.15)
    b = rng.uniform(-0.05, 0.05)
    return np.clip((y - 0.5) * c + 0.5 + b, 0, 1)


def online_augment(x, rng):
    """Online augmentation of a batch of cached units x: float32 tensor [B,1,224,224] in [0,1] (train.py
    --online-aug). Per image: JPEG re-encode at quality 30-95 (p .5) and Gaussian blur sigma .3-1.2 (p .35) so
    that file format / sharpness are not class cues; random resized crop (area .6-1, aspect 3/4-4/3) + rotation
    +-10 deg + horizontal flip (p .5) in one bilinear affine resample; gamma, contrast .8-1.2, brightness +-.08.
    All random numbers come from the numpy RandomState rng (reproducible)."""
    import torch
    import torch.nn.functional as F
    from PIL import Image

    n = x.shape[0]
    x = x.clone()
    for i in range(n):
        if rng.rand() < 0.5:
            u8 = np.clip(x[i, 0].numpy() * 255.0 + 0.5, 0, 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(u8).save(buf, format="JPEG", quality=int(rng.randint(30, 96)))
            buf.seek(0)
            x[i, 0] = torch.from_numpy(np.asarray(Image.open(buf).convert("L"), dtype=np.float32) / 255.0)
        if rng.rand() < 0.35:
            sig = float(rng.uniform(0.3, 1.2))
            r = np.arange(-3, 4, dtype=np.float32)
            k = np.exp(-0.5 * (r / sig) ** 2)
            k = torch.from_numpy(k / k.sum())
            y = F.pad(x[i:i + 1], (3, 3, 3, 3), mode="replicate")
            y = F.conv2d(y, k.reshape(1, 1, 1, 7))
            y = F.conv2d(y, k.reshape(1, 1, 7, 1))
            x[i:i + 1] = y
    area = rng.uniform(0.6, 1.0, n)
    ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3), n))
    w = np.minimum(1.0, np.sqrt(area * ratio))
    h = np.minimum(1.0, np.sqrt(area / ratio))
    cx = rng.uniform(-1, 1, n) * (1 - w)
    cy = rng.uniform(-1, 1, n) * (1 - h)
    ang = np.deg2rad(rng.uniform(-10, 10, n))
    flip = np.where(rng.rand(n) < 0.5, -1.0, 1.0)
    c, s = np.cos(ang), np.sin(ang)
    theta = np.stack([np.stack([c * w * flip, -s * h, cx], 1), np.stack([s * w * flip, c * h, cy], 1)], 1)
    grid = F.affine_grid(torch.from_numpy(theta.astype(np.float32)), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False).clamp(0, 1)
    gamma = torch.from_numpy(np.exp(rng.uniform(-0.25, 0.25, n)).astype(np.float32)).reshape(n, 1, 1, 1)
    con = torch.from_numpy(rng.uniform(0.8, 1.2, n).astype(np.float32)).reshape(n, 1, 1, 1)
    bri = torch.from_numpy(rng.uniform(-0.08, 0.08, n).astype(np.float32)).reshape(n, 1, 1, 1)
    x = x.clamp_min(1e-6) ** gamma
    return ((x - 0.5) * con + 0.5 + bri).clamp(0, 1)


def main():
    import torch

    torch.set_num_threads(2)
    os.makedirs(CACHE, exist_ok=True)
    groups = build_index()
    for g, items in groups.items():
        with open(os.path.join(CACHE, f"index_{g}.json"), "w") as f:
            json.dump(items, f)
        print(g, len(items), "pos", sum(i["label"] for i in items), flush=True)
    # unit images
    t0 = time.time()
    jobs = [("val", None), ("test", None), ("ctmd", None), ("train", None), ("train_aug", 1234)]
    for name, seed in jobs:
        out = os.path.join(CACHE, f"units_{name}.npy")
        if os.path.exists(out):
            continue
        items = groups[name.split("_")[0]]
        rng = np.random.RandomState(seed) if seed is not None else None
        arr = np.zeros((len(items), 224, 224), np.float16)
        for i, it in enumerate(items):
            u = load_unit(it, rng)
            if rng is not None:
                u = unit_augment(u, rng)
            arr[i] = u
        np.save(out, arr)
        print(f"units {name} {arr.shape} {time.time() - t0:.0f}s", flush=True)
    # frozen features
    from model import MLSAM

    m = MLSAM().eval()
    for name, _ in jobs:
        out = os.path.join(CACHE, f"feats_{name}.npz")
        if os.path.exists(out):
            continue
        u = np.load(os.path.join(CACHE, f"units_{name}.npy"))
        l8 = np.zeros((len(u), 32, 28, 28), np.float16)
        l16 = np.zeros((len(u), 96, 14, 14), np.float16)
        t1 = time.time()
        with torch.no_grad():
            for s in range(0, len(u), 32):
                x = torch.from_numpy(((u[s:s + 32].astype(np.float32) - 0.5) / 0.5))[:, None].repeat(1, 3, 1, 1)
                a = m.stem(x)
                b = m.mid(a)
                l8[s:s + 32] = a.numpy().astype(np.float16)
                l16[s:s + 32] = b.numpy().astype(np.float16)
        np.savez(out, l8=l8, l16=l16)
        print(f"feats {name} {len(u)} imgs {time.time() - t1:.0f}s ({len(u) / (time.time() - t1):.1f} img/s)", flush=True)


if __name__ == "__main__":
    main()

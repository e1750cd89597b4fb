"""Data index, cross-validation folds and caches (model 2.x: lung-cropped preprocessing).

Groups (fixed seeds):
  dev:   covid-ct official train + val (543 images, 5 folds grouped by patient id) + all of mosmed (890 slices, one
         per study, 5 folds stratified by severity). Cross-validation chooses the epoch count and the slice
         threshold; the official covid-ct val split is still reported (as the folds' covid-ct 'val' members).
  test:  covid-ct official 'test' (reported once, final model only)
  ctmd:  COVID-CT-MD P001 / cap001 / normal001, all slices, HU (never trained on; the fusion of CNN and opacity
         burden and the series categories are chosen on it - see MODEL_CARD.md)
  extra: sars-cov-2-ct (no patient ids, so never validated on): training-only data for train.py --extra-weight
         (it taught a source shortcut in model 1.x, see MODEL_CARD.md; 2.x cross-validation judges it on the dev folds)
Caches (training/cache/lung/, gitignored):
  units_<name>.npy   float16 [N,224,224] preprocessed images in [0,1] (steps 1-3 of preprocess.py)
                     names: dev, dev_aug, dev_aug2, dev_aug3 (augmented views of each dev image, seeds
                     1234-1236), test, ctmd, extra, extra_aug
  feats_<name>.npz   float16 l8 [N,32,28,28] of the frozen stride-2..8 blocks; also <name>_flip (mirrored units)
  index_<group>.json items (source, file, label, fold, ...)
Usage: /usr/bin/python3 training/data.py [--variants]   (--variants: also the caches of the variants tried for 2.1)
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
from preprocess import load_display, load_hu, pixel_spacing, preprocess_unit  # noqa: E402

REPO = os.path.dirname(HERE)
DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
CACHE = os.path.join(HERE, "cache", "lung")
FOLDS = 5

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
    groups: Dict[str, List[dict]] = {"dev": [], "test": [], "ctmd": [], "extra": []}
    patients = {r["file"]: r["patient_id"] for r in _csv("covid-ct/patients.csv")}
    cc = [r for r in _csv("covid-ct/split.csv")]
    # patient-grouped folds: patients in sorted order, shuffled with seed 0, dealt round-robin per class
    rng = np.random.RandomState(0)
    fold_of: Dict[str, int] = {}
    for label in ("1", "0"):
        pats = sorted({patients[r["file"]] for r in cc if r["split"] != "test" and r["label"] == label})
        for k, i in enumerate(rng.permutation(len(pats))):
            fold_of.setdefault(pats[i], k % FOLDS)
    for r in cc:
        item = {"source": "covid-ct", "file": "covid-ct/" + r["file"], "label": int(r["label"]), "kind": "display",
                "patient": patients[r["file"]], "officialSplit": r["split"]}
        if r["split"] == "test":
            groups["test"].append(item)
        else:
            item["fold"] = fold_of[item["patient"]]
            groups["dev"].append(item)
    by_sev: Dict[str, List[dict]] = {}
    for r in _csv("mosmed/labels.csv"):
        by_sev.setdefault(r["severity"], []).append(r)
    for sev in sorted(by_sev):
        rows = sorted(by_sev[sev], key=lambda r: r["file"])
        for k, i in enumerate(rng.permutation(len(rows))):
            r = rows[i]
            groups["dev"].append({"source": "mosmed", "file": "mosmed/" + r["file"], "label": int(r["label"]),
                                  "kind": "display", "severity": sev, "fold": k % FOLDS})
    # extra: SARS-CoV-2 CT (no patient ids): training data only, never validated on (train.py --extra-weight)
    for r in sorted(_csv("sars-cov-2-ct/labels.csv"), key=lambda r: r["file"]):
        groups["extra"].append({"source": "sars-cov-2-ct", "file": "sars-cov-2-ct/" + r["file"], "label": int(r["label"]),
                                "kind": "display"})
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
                "position": float(ds.ImagePositionPatient[2]),
                "label": labels.get((series, uid), 0), "kind": "hu",
                "seriesLabel": 1 if series == "P001" else 0, "infection": 0 if series == "normal001" else 1,
            })
    return groups


def load_unit(item: dict, aug_rng=None) -> np.ndarray:
    path = os.path.join(DATA, item["file"])
    if item["kind"] == "hu":
        hu, ds = load_hu(path)
        return preprocess_unit(hu, "hu", spacing=pixel_spacing(ds))
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
    """Online augmentation of a batch of cached units x: float32 tensor [B,1,224,224] in [0,1] (train_full.py).
    Per image: JPEG re-encode at quality 30-95 (p .5) and Gaussian blur sigma .3-1.2 (p .35) so that file format /
    sharpness are not class cues; random resized crop (area .6-1, aspect 3/4-4/3) + rotation +-10 deg + horizontal
    flip (p .5) in one bilinear affine resample; gamma, contrast .8-1.2, brightness +-.08.
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
    t0 = time.time()
    # dev_aug: the augmented view of the recipe; with --variants also the caches of the variants tried for 2.1
    # (MODEL_CARD.md, "Tried for 2.1"): dev_aug2/3 (train.py --aug-views 3), extra + extra_aug (--extra-weight)
    jobs = [("test", None), ("ctmd", None), ("dev", None), ("dev_aug", 1234)]
    if "--variants" in sys.argv[1:]:
        jobs += [("dev_aug2", 1235), ("dev_aug3", 1236), ("extra", None), ("extra_aug", 4321)]
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
            if i % 200 == 0:
                print(f"  units {name} {i}/{len(items)} {time.time() - t0:.0f}s", flush=True)
        np.save(out + ".tmp.npy", arr)
        os.replace(out + ".tmp.npy", out)
        print(f"units {name} {arr.shape} {time.time() - t0:.0f}s", flush=True)
    if "--units-only" in sys.argv[1:]:  # train_full.py reads the units only (no frozen features)
        return
    from model import MLSAM

    m = MLSAM().eval()
    for name, flip in [(n, f) for n, _ in jobs for f in (False, True) if not (f and (n.startswith("dev_aug") or n.startswith("extra")))]:
        out = os.path.join(CACHE, f"feats_{name}{'_flip' if flip else ''}.npz")
        if os.path.exists(out):
            continue
        u = np.load(os.path.join(CACHE, f"units_{name}.npy"))
        l8 = np.zeros((len(u), 32, 28, 28), np.float16)
        t1 = time.time()
        with torch.no_grad():
            for s in range(0, len(u), 32):
                b = u[s:s + 32].astype(np.float32)
                if flip:
                    b = b[:, :, ::-1].copy()
                x = torch.from_numpy((b - 0.5) / 0.5)[:, None].repeat(1, 3, 1, 1)
                l8[s:s + 32] = m.stem(x).numpy().astype(np.float16)
        np.savez(out + ".tmp.npz", l8=l8)
        os.replace(out + ".tmp.npz", out)
        print(f"feats {name} flip={flip} {len(u)} imgs {time.time() - t1:.0f}s ({len(u) / (time.time() - t1):.1f} img/s)", flush=True)


if __name__ == "__main__":
    main()

"""Pack what train_full.py needs into training/gpu-pack/ (gitignored), the folder a device machine gets through the
device tool's `carry` (64 MiB with the working tree, which is about 16 MiB): the lung-cropped dev and COVID-CT-MD
units of training/data.py as baseline JPEG, quality 95 (mean absolute error 0.76 of 255 grey levels; as plain
uint8 they would not fit: 95 MiB raw, 64 MiB zlib), with their indexes, and the ImageNet MobileNetV2 weights as
float16 (../shared/data does not travel to that machine). Together about 38 MiB.
The JPEG rounding touches the validation images of a cross-validation run there; evaluate.py (here, on the
exact units and the raw data) is unaffected.

Usage: /usr/bin/python3 training/data.py && /usr/bin/python3 training/gpu_pack.py   (then see training/gpu_run.sh)
"""
from __future__ import annotations

import io
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from data import CACHE  # noqa: E402
from model import PRETRAINED  # noqa: E402

OUT = os.path.join(HERE, "gpu-pack")
JPEG_QUALITY = 95


def encode(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N,H,W] in [0,1] -> (the JPEG files concatenated as uint8, their N+1 offsets)."""
    from PIL import Image

    blobs = []
    for u in units:
        u8 = np.clip(np.rint(u.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
        b = io.BytesIO()
        Image.fromarray(u8).save(b, format="JPEG", quality=JPEG_QUALITY)
        blobs.append(np.frombuffer(b.getvalue(), np.uint8))
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    return np.concatenate(blobs), offsets


def decode(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The inverse of encode: uint8 [N,H,W]."""
    from PIL import Image

    return np.stack([np.asarray(Image.open(io.BytesIO(data[offsets[i]:offsets[i + 1]].tobytes())).convert("L"))
                     for i in range(len(offsets) - 1)])


def main():
    os.makedirs(OUT, exist_ok=True)
    arrays = {}
    for group in ("dev", "ctmd"):
        arrays[f"jpeg_{group}"], arrays[f"offsets_{group}"] = encode(np.load(os.path.join(CACHE, f"units_{group}.npy")))
        with open(os.path.join(CACHE, f"index_{group}.json")) as f:
            arrays[f"index_{group}"] = np.array(json.dumps(json.load(f)))
    np.savez(os.path.join(OUT, "units.npz"), **arrays)
    weights = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in np.load(PRETRAINED).items()}
    np.savez(os.path.join(OUT, os.path.basename(PRETRAINED)), **weights)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"{OUT}: {total / 2**20:.1f} MiB (JPEG quality {JPEG_QUALITY}: dev {len(arrays['offsets_dev']) - 1}, "
          f"ctmd {len(arrays['offsets_ctmd']) - 1} units; ImageNet weights float16)")


if __name__ == "__main__":
    main()

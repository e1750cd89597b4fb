"""Full fine-tuning of ML-SAM (every block of MobileNetV2, no cached features) with online augmentation: the lever
the 2.x CPU recipe (train.py: strides 2-8 frozen, two cached views per image) could not afford here. It is written
for a GPU session (`--device cuda`, training/gpu_run.sh); on the 2-core CPU it runs at 13-17 images/s, 24-29 min per
fold, too slow for the whole cross-validation and final model in one session (about 2.8 h).

Usage: python3 training/train_full.py --fold K|all [--epochs 12] [--run training/runs/full-fold<K>] [--device cuda]
                                      [--pack training/gpu-pack/units.npz]
  Inputs: the lung-cropped 224x224 units of training/data.py (training/cache/lung/units_*.npy and index_*.json), or
  the same in one compressed file made by `python3 training/gpu_pack.py` (what travels to a device machine).
  Outputs: the files train.py writes, in the same format (<run>/model.pt, preds.npz, train.json, log.txt), so
  training/cv.py --runs <dir> --prefix full-fold, evaluate.py and export.py take them unchanged.
Augmentation: data.online_augment (JPEG re-encode, blur, random resized crop, rotation, flip, gamma, contrast,
brightness) on every draw. BatchNorm stays in eval mode (ImageNet statistics), as in train.py and in the export.
Each epoch draws --draws-per-epoch images with replacement, covid-ct weight 2, mosmed weight 1 (as train.py).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gpu_pack  # noqa: E402
import model as model_module  # noqa: E402
from data import CACHE, online_augment  # noqa: E402
from loop import SEED, Epoch, Schedule, Split, add_common_args, finish, run_log, smoothed  # noqa: E402
from metrics import auc  # noqa: E402
from model import MLSAM  # noqa: E402
from preprocess import PREPROCESSING  # noqa: E402


class Units:
    """Units [N,224,224] in [0,1] and the index of each group, from the cache or from a gpu_pack.py file."""

    def __init__(self, pack: str | None):
        self.pack = np.load(pack) if pack else None

    def units(self, group: str) -> np.ndarray:
        if self.pack is not None:  # uint8, 0..255
            return gpu_pack.decode(self.pack[f"jpeg_{group}"], self.pack[f"offsets_{group}"])
        return np.load(os.path.join(CACHE, f"units_{group}.npy"))

    def index(self, group: str) -> list:
        if self.pack is not None:
            return json.loads(str(self.pack[f"index_{group}"]))
        with open(os.path.join(CACHE, f"index_{group}.json")) as f:
            return json.load(f)


def to_unit_tensor(u: np.ndarray) -> torch.Tensor:
    """[B,224,224] uint8 or float in [0,1] -> float32 [B,1,224,224] in [0,1]."""
    x = torch.from_numpy(np.asarray(u))
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return x[:, None]


def normalise(x: torch.Tensor) -> torch.Tensor:
    """[B,1,H,W] in [0,1] -> the network's input [B,C,H,W] (preprocess.normalize on a tensor)."""
    n = PREPROCESSING["normalize"]
    return ((x - float(n["mean"])) / float(n["std"])).repeat(1, int(PREPROCESSING["channels"]), 1, 1)


def logits(model: MLSAM, x: torch.Tensor) -> torch.Tensor:
    # channels_last (NHWC) end to end: oneDNN's fast convolution layout on CPU, measured 2.1x the images/s of
    # NCHW for a training step on this 2-core VM (5.6 -> 11.9 img/s, batch 32); same arithmetic, other order.
    x = x.contiguous(memory_format=torch.channels_last)
    l8 = model.stem(x)
    out, _ = model.forward_features(l8, model.mid(l8))
    return out


def predict(model: MLSAM, units: np.ndarray, device: torch.device, flip: bool = False, bs: int = 64) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(units), bs):
            x = to_unit_tensor(units[s:s + bs])
            if flip:
                x = torch.flip(x, dims=[3])
            out.append(torch.sigmoid(logits(model, normalise(x).to(device))).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def set_train_mode(model: MLSAM) -> None:
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()


def main():
    ap = argparse.ArgumentParser()
    add_common_args(ap)
    ap.add_argument("--lr-stem", type=float, default=1e-4, help="blocks at strides 2-8 (frozen in train.py)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--pack", default=None, help="units from a gpu_pack.py file (units.npz) instead of training/cache; "
                                                 "the ImageNet weights are taken from the same folder")
    ap.add_argument("--no-ctmd", action="store_true", help="skip the per-epoch COVID-CT-MD predictions")
    ap.add_argument("--max-steps", type=int, default=0, help="stop each epoch after this many steps (smoke test)")
    ap.add_argument("--run", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    rng = np.random.RandomState(SEED)
    dev_ = torch.device(args.device)
    run = args.run or os.path.join(HERE, "runs", f"full-fold{args.fold}")
    log = run_log(run)

    if args.pack:
        model_module.PRETRAINED = os.path.join(os.path.dirname(args.pack), os.path.basename(model_module.PRETRAINED))
    data = Units(args.pack)
    dev = data.index("dev")
    u_dev = data.units("dev")
    sw = {"covid-ct": args.covidct_weight, "mosmed": args.mosmed_weight}
    sp = Split(dev, args.fold, sw)
    tr_idx, va_idx, y_dev = sp.tr, sp.va, sp.y
    u_va = np.asarray(u_dev[va_idx]) if len(va_idx) else None
    use_ct = not args.no_ctmd
    if use_ct:
        ct = data.index("ctmd")
        u_ct = np.asarray(data.units("ctmd"))
        y_ct = np.array([i["label"] for i in ct])
        ser_ct = np.array([i["series"] for i in ct])

    model = MLSAM().to(dev_).to(memory_format=torch.channels_last)
    groups = [
        {"params": [p for p in model.stem.parameters()], "lr": args.lr_stem},
        {"params": [p for m in model.trainable_backbone() for p in m.parameters()] + list(model.mid.parameters()),
         "lr": args.lr_backbone},
        {"params": [p for m in model.heads() for p in m.parameters()], "lr": args.lr},
    ]
    for g in groups:
        for p in g["params"]:
            p.requires_grad_(True)
    opt = torch.optim.AdamW(groups, weight_decay=args.wd)
    n = args.draws_per_epoch
    steps_per_epoch = math.ceil(n / args.bs)
    if args.max_steps:
        steps_per_epoch = min(steps_per_epoch, args.max_steps)
    sched = Schedule(opt, steps_per_epoch * args.epochs)
    log(f"run {run} fold {args.fold} train {len(tr_idx)} val {len(va_idx)} device {dev_} args {vars(args)}")
    hist, t0 = [], time.time()
    p_va_ep, p_ct_ep = [], []
    for ep in range(1, args.epochs + 1):
        epoch = Epoch(ep)
        set_train_mode(model)
        order = sp.draw(rng, n)
        for k, s in enumerate(range(0, n, args.bs)):
            if k >= steps_per_epoch:
                break
            idx = order[s:s + args.bs]
            y = smoothed(y_dev[idx], args.smooth).to(dev_)
            x = online_augment(to_unit_tensor(u_dev[idx]), rng)
            loss = F.binary_cross_entropy_with_logits(logits(model, normalise(x).to(dev_)), y)
            sched.update(loss)
            epoch.add(loss, len(idx))
        rec, msg = epoch.record()
        if len(va_idx):
            p_va = predict(model, u_va, dev_)
            p_va_ep.append(p_va)
            msg += f" foldAUC {sp.record(rec, p_va)}"
        if use_ct:
            p_ct = predict(model, u_ct, dev_)
            p_ct_ep.append(p_ct)
            rec["ctmdMeanProb"] = {s: float(np.mean(p_ct[ser_ct == s])) for s in ("P001", "cap001", "normal001")}
            rec["ctmdSliceAucP001"] = auc(y_ct[ser_ct == "P001"], p_ct[ser_ct == "P001"])
            msg += f" | ctmd P001 sliceAUC {rec['ctmdSliceAucP001']:.3f}"
        rec["epochSeconds"] = epoch.seconds()
        hist.append(rec)
        log(f"{msg} | {rec['imgPerSec']:.1f} img/s {rec['epochSeconds']:.0f}s")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save(state, os.path.join(run, "model.pt"))
    extra = {}
    if len(va_idx):
        extra["val_flip"] = predict(model, u_va, dev_, flip=True)
    if use_ct:
        extra["ctmd_flip"] = predict(model, u_ct, dev_, flip=True)
    finish(run, log, t0, args, sp, sw, hist,
           dict(val_idx=va_idx, val=np.array(p_va_ep), ctmd=np.array(p_ct_ep) if use_ct else np.zeros((0, 0), np.float32),
                **extra),
           recipe="full fine-tuning, online augmentation (train_full.py)", device=str(dev_))


if __name__ == "__main__":
    main()

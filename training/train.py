"""Train ML-SAM (MobileNetV2) on the lung-cropped caches of training/data.py.

Usage: /usr/bin/python3 training/train.py --fold K|all [--epochs 12] [--run training/runs/<name>] [flags]
  --fold K   train on the dev folds != K, validate on fold K (patient-grouped for covid-ct, one study per mosmed
             slice): per-epoch out-of-fold predictions go to <run>/preds.npz
  --fold all train on every dev image for the epoch count chosen by cross-validation (no validation data left;
             COVID-CT-MD is predicted for information only, it is never trained on)
Training: strides 2-8 (features[0:7]) frozen and cached as stride-8 features of several views per image (original +
--aug-views augmented ones); features[7:19] and the attention/classifier heads are fine-tuned. Each epoch draws
--draws-per-epoch images with replacement, covid-ct weight 2, mosmed weight 1 (sars-cov-2-ct --extra-weight, 0 in 2.0.0).
Writes <run>/log.txt, <run>/model.pt (the last epoch), <run>/train.json (history, timings, seeds), <run>/preds.npz.
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
from data import CACHE  # noqa: E402
from loop import SEED, Epoch, Schedule, Split, add_common_args, finish, run_log, smoothed  # noqa: E402
from metrics import auc  # noqa: E402
from model import MLSAM  # noqa: E402


def load(name):
    return np.load(os.path.join(CACHE, f"feats_{name}.npz"))["l8"]


def index(group):
    with open(os.path.join(CACHE, f"index_{group}.json")) as f:
        return json.load(f)


def predict(model, l8, bs=64):
    """Probabilities from cached stride-8 features (the later blocks may be fine-tuned)."""
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(l8), bs):
            a = torch.from_numpy(np.asarray(l8[s:s + bs], dtype=np.float32))
            logit, _ = model.forward_features(a, model.mid(a))
            out.append(torch.sigmoid(logit).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def main():
    ap = argparse.ArgumentParser()
    add_common_args(ap)
    ap.add_argument("--aug-views", type=int, default=1, choices=(1, 2, 3),
                    help="augmented cached views per image besides the original (2.0.0: 1)")
    ap.add_argument("--extra-weight", type=float, default=0.0,
                    help="sampling weight of each sars-cov-2-ct image, training only (0: not used, as in 2.0.0)")
    ap.add_argument("--swa-from", type=int, default=0,
                    help="also keep the uniform mean of the epoch-end weights from this epoch on (0: off); BatchNorm "
                         "is frozen, so the mean needs no statistics update; written as <run>/swa.pt")
    ap.add_argument("--run", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    rng = np.random.RandomState(SEED)
    run = args.run or os.path.join(HERE, "runs", f"lung-fold{args.fold}")
    log = run_log(run)

    dev = index("dev")
    sw = {"covid-ct": args.covidct_weight, "mosmed": args.mosmed_weight}
    sp = Split(dev, args.fold, sw)
    tr_idx, va_idx, y_dev, w_tr = sp.tr, sp.va, sp.y, sp.w_tr
    views = [load("dev"), load("dev_aug")] + [load(f"dev_aug{v}") for v in range(2, args.aug_views + 1)]
    n_dev = len(dev)
    if args.extra_weight > 0:  # training-only images: drawn beside the training folds, never validated on
        y_all = np.concatenate([y_dev, np.array([it["label"] for it in index("extra")], np.float32)])
        extra_views = [load("extra"), load("extra_aug")]
        pool = np.concatenate([tr_idx, n_dev + np.arange(len(extra_views[0]))])
        w_pool = np.concatenate([w_tr, np.full(len(extra_views[0]), args.extra_weight)])
    ct = index("ctmd")
    c8 = load("ctmd")
    y_ct = np.array([i["label"] for i in ct])
    ser_ct = np.array([i["series"] for i in ct])

    model = MLSAM()
    model.train_mid = True
    for p in model.stem.parameters():
        p.requires_grad_(False)
    bb = [p for m in model.trainable_backbone() for p in m.parameters()] + list(model.mid.parameters())
    hd = [p for m in model.heads() for p in m.parameters()]
    opt = torch.optim.AdamW([{"params": bb, "lr": args.lr_backbone}, {"params": hd, "lr": args.lr}], weight_decay=args.wd)
    n = args.draws_per_epoch
    sched = Schedule(opt, math.ceil(n / args.bs) * args.epochs)
    log(f"run {run} fold {args.fold} train {len(tr_idx)} val {len(va_idx)} ctmd {len(ct)} args {vars(args)}")
    hist, t0 = [], time.time()
    p_va_ep, p_ct_ep = [], []
    swa, swa_n, p_va_swa = None, 0, []
    for ep in range(1, args.epochs + 1):
        epoch = Epoch(ep)
        model.set_train_mode()
        if args.extra_weight > 0:
            order = pool[rng.choice(len(pool), size=n, replace=True, p=w_pool / w_pool.sum())]
        else:
            order = sp.draw(rng, n)
        vsel = rng.randint(0, len(views), size=n)  # which cached view: 0 original, 1.. augmented
        for s in range(0, n, args.bs):
            idx = order[s:s + args.bs]
            y = smoothed(y_all[idx] if args.extra_weight > 0 else y_dev[idx], args.smooth)
            l8 = np.stack([views[v][i] if i < n_dev else extra_views[v % 2][i - n_dev]
                           for i, v in zip(idx, vsel[s:s + args.bs])]).astype(np.float32)
            t8 = torch.from_numpy(l8)
            logit, _ = model.forward_features(t8, model.mid(t8))
            loss = F.binary_cross_entropy_with_logits(logit, y)
            sched.update(loss)
            epoch.add(loss, len(idx))
        rec, msg = epoch.record()
        if len(va_idx):
            p_va = predict(model, views[0][va_idx])
            p_va_ep.append(p_va)
            msg += f" foldAUC {sp.record(rec, p_va)}"
        p_ct = predict(model, c8)
        p_ct_ep.append(p_ct)
        means = {s: float(np.mean(p_ct[ser_ct == s])) for s in ("P001", "cap001", "normal001")}
        rec["ctmdMeanProb"] = means
        rec["ctmdSliceAucP001"] = auc(y_ct[ser_ct == "P001"], p_ct[ser_ct == "P001"])
        if args.swa_from and ep >= args.swa_from:
            cur = {k: v.detach().clone() for k, v in model.state_dict().items()}
            swa_n += 1
            swa = cur if swa is None else {k: swa[k] + (cur[k] - swa[k]) / swa_n if cur[k].is_floating_point()
                                           else cur[k] for k in cur}
            if len(va_idx):
                model.load_state_dict(swa)
                p_sw = predict(model, views[0][va_idx])
                model.load_state_dict(cur)  # back to the epoch's own weights
                p_va_swa.append(p_sw)
                msg += f" | swa({swa_n}) {sp.record(rec, p_sw, 'Swa')}"
        rec["epochSeconds"] = epoch.seconds()
        hist.append(rec)
        log(f"{msg} | ctmd P001 sliceAUC {rec['ctmdSliceAucP001']:.3f} mean P001 {means['P001']:.3f} cap001 "
            f"{means['cap001']:.3f} normal001 {means['normal001']:.3f} | {rec['imgPerSec']:.1f} img/s {rec['epochSeconds']:.0f}s")
    torch.save(model.state_dict(), os.path.join(run, "model.pt"))
    if swa is not None:
        torch.save(swa, os.path.join(run, "swa.pt"))
    # mirrored views of the last epoch's model (flip test-time augmentation is judged on these)
    extra = {}
    if len(va_idx):
        extra["val_flip"] = predict(model, load("dev_flip")[va_idx])
    extra["ctmd_flip"] = predict(model, load("ctmd_flip"))
    if p_va_swa:
        extra["val_swa"] = np.array(p_va_swa)  # [epochs from --swa-from, n]: the running mean's predictions
    if args.extra_weight > 0:
        sw["sars-cov-2-ct"] = args.extra_weight
    finish(run, log, t0, args, sp, sw, hist,
           dict(val_idx=va_idx, val=np.array(p_va_ep), ctmd=np.array(p_ct_ep), **extra))


if __name__ == "__main__":
    main()

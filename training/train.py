"""Train ML-SAM (MobileNetV2) on the caches of training/data.py.

Usage: /usr/bin/python3 training/train.py [--epochs 8] [--run training/runs/<UTC date-time>] [flags]
  shipped: --full-finetune --freeze-stem --online-aug  (cached 224x224 images, data.online_augment every step,
           strides 2-8 frozen but run per step, strides 16-32 + heads fine-tuned; see training/run_all.sh)
  older:   --unfreeze-mid  (cached stride-8 features of two fixed views per image)
Logs one line per epoch to <run>/log.txt; keeps the best epoch by validation AUC (covid-ct val + mosmed val)
in <run>/model.pt; writes <run>/train.json (history, timings, seeds).
"""
from __future__ import annotations

import argparse
import datetime as dt
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
from data import CACHE, online_augment  # noqa: E402
from metrics import auc  # noqa: E402
from model import MLSAM  # noqa: E402

SEED = 20260525


def load(name):
    z = np.load(os.path.join(CACHE, f"feats_{name}.npz"))
    return z["l8"], z["l16"]


def index(group):
    with open(os.path.join(CACHE, f"index_{group}.json")) as f:
        return json.load(f)


def predict(model, l8, l16=None, bs=64):
    """Probabilities from cached stride-8 features (stride-16 features recomputed: `mid` may be fine-tuned)."""
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(l8), bs):
            a = torch.from_numpy(l8[s:s + bs].astype(np.float32))
            logit, _ = model.forward_features(a, model.mid(a))
            out.append(torch.sigmoid(logit).numpy())
    return np.concatenate(out)


def load_units(name, idx=None):
    u = np.load(os.path.join(CACHE, f"units_{name}.npy"), mmap_mode="r")
    return np.ascontiguousarray(u if idx is None else u[idx])


def to_input(u):
    """[B,224,224] units in [0,1] (array or tensor) -> normalised 3-channel network input."""
    x = torch.as_tensor(np.asarray(u, dtype=np.float32) if not torch.is_tensor(u) else u)
    if x.dim() == 3:
        x = x[:, None]
    return ((x - 0.5) / 0.5).repeat(1, 3, 1, 1)


def predict_units(model, units, bs=64):
    """Probabilities from cached preprocessed units through the full network (--full-finetune models)."""
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(units), bs):
            out.append(model(to_input(units[s:s + bs]))[0].numpy())
    return np.concatenate(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-backbone", type=float, default=2e-4)
    ap.add_argument("--smooth", type=float, default=0.05)
    ap.add_argument("--covidct-weight", type=float, default=2.0)
    ap.add_argument("--mosmed-weight", type=float, default=1.0)
    ap.add_argument("--sars-weight", type=float, default=0.0,
                    help="0 = sars-cov-2-ct not used: validation showed negative transfer (see MODEL_CARD.md)")
    ap.add_argument("--draws-per-epoch", type=int, default=1600)
    ap.add_argument("--max-minutes", type=float, default=1e9)
    ap.add_argument("--run", default=None)
    ap.add_argument("--unfreeze-mid", action="store_true",
                    help="also fine-tune features[7:14] (stride 16), training from the cached stride-8 features")
    ap.add_argument("--full-finetune", action="store_true",
                    help="fine-tune the whole network (all but features[0], the first conv) from the cached 224x224 "
                    "units instead of cached stride-8 features")
    ap.add_argument("--freeze-stem", action="store_true",
                    help="with --full-finetune: keep features[0:7] (strides 2-8) frozen; it still runs on every "
                    "online-augmented image (no grad), validation uses the cached stride-8 features")
    ap.add_argument("--online-aug", action="store_true", help="with --full-finetune: data.online_augment per step")
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--aug-seed", type=int, default=1234)
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    rng = np.random.RandomState(SEED)
    run = args.run or os.path.join(HERE, "runs", dt.datetime.utcnow().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(run, exist_ok=True)
    logf = open(os.path.join(run, "log.txt"), "a")

    def log(msg):
        line = f"{dt.datetime.utcnow().strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    tr = index("train")
    y_tr = np.array([i["label"] for i in tr], np.float32)
    sw = {"covid-ct": args.covidct_weight, "mosmed": args.mosmed_weight, "sars-cov-2-ct": args.sars_weight}
    w_tr = np.array([sw[i["source"]] for i in tr], np.float64)
    va = index("val")
    y_va = np.array([i["label"] for i in va])
    src_va = np.array([i["source"] for i in va])
    ctmd = index("ctmd")
    if args.full_finetune:
        used_idx = np.flatnonzero(w_tr > 0)
        pos = np.full(len(tr), -1)
        pos[used_idx] = np.arange(len(used_idx))
        u_tr = load_units("train", used_idx)
        if args.freeze_stem:
            v8, v16 = load("val")
            c8, c16 = load("ctmd")
        else:
            u_va, u_ct = load_units("val"), load_units("ctmd")
        arng = np.random.RandomState(args.aug_seed)
    else:
        views = [load("train"), load("train_aug")]
        v8, v16 = load("val")
        c8, c16 = load("ctmd")
    y_ct = np.array([i["label"] for i in ctmd])
    ser_ct = np.array([i["series"] for i in ctmd])

    model = MLSAM()
    model.train_mid = bool(args.unfreeze_mid or args.full_finetune)
    if args.full_finetune:
        for p in (model.stem if args.freeze_stem else model.stem[0]).parameters():
            p.requires_grad_(False)
        bb = [p for m in (model.stem, model.mid, model.high, model.top) for p in m.parameters() if p.requires_grad]
    else:
        for m in ([model.stem] if args.unfreeze_mid else model.frozen()):
            for p in m.parameters():
                p.requires_grad_(False)
        bb = [p for m in model.trainable_backbone() for p in m.parameters()]
        if args.unfreeze_mid:
            bb += list(model.mid.parameters())
    hd = [p for m in model.heads() for p in m.parameters()]
    opt = torch.optim.AdamW([{"params": bb, "lr": args.lr_backbone}, {"params": hd, "lr": args.lr}], weight_decay=args.wd)
    n = args.draws_per_epoch
    used = {k: int(sum(1 for i in tr if i["source"] == k)) for k, v in sw.items() if v > 0}
    steps_per_epoch = math.ceil(n / args.bs)
    total = steps_per_epoch * args.epochs
    base = [g["lr"] for g in opt.param_groups]
    log(f"run {run} train sources used {used} draws/epoch {n} val {len(va)} ctmd {len(ctmd)} epochs {args.epochs} args {vars(args)}")
    best, hist, step, t0 = -1.0, [], 0, time.time()
    for ep in range(1, args.epochs + 1):
        te = time.time()
        model.set_train_mode()
        order = rng.choice(len(tr), size=n, replace=True, p=w_tr / w_tr.sum())
        vsel = rng.randint(0, 2, size=n)  # which cached view: 0 original, 1 augmented
        tot, cnt = 0.0, 0
        for s in range(0, n, args.bs):
            idx = order[s:s + args.bs]
            y = torch.from_numpy(y_tr[idx])
            y = y * (1 - args.smooth) + 0.5 * args.smooth
            warm = min(1.0, (step + 1) / 50)
            cos = 0.5 * (1 + math.cos(math.pi * step / total))
            for g, b in zip(opt.param_groups, base):
                g["lr"] = b * warm * cos
            if args.full_finetune:
                xb = torch.from_numpy(u_tr[pos[idx]].astype(np.float32))[:, None]
                if args.online_aug:
                    xb = online_augment(xb, arng)
                if args.freeze_stem:
                    with torch.no_grad():
                        t8 = model.stem(to_input(xb))
                else:
                    t8 = model.stem(to_input(xb))
                logit, _ = model.forward_features(t8, model.mid(t8))
            elif args.unfreeze_mid:
                l8 = np.stack([views[v][0][i] for i, v in zip(idx, vsel[s:s + args.bs])]).astype(np.float32)
                t8 = torch.from_numpy(l8)
                logit, _ = model.forward_features(t8, model.mid(t8))
            else:
                l8 = np.stack([views[v][0][i] for i, v in zip(idx, vsel[s:s + args.bs])]).astype(np.float32)
                l16 = np.stack([views[v][1][i] for i, v in zip(idx, vsel[s:s + args.bs])]).astype(np.float32)
                logit, _ = model.forward_features(torch.from_numpy(l8), torch.from_numpy(l16))
            loss = F.binary_cross_entropy_with_logits(logit, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            tot += float(loss) * len(idx)
            cnt += len(idx)
            if ep == 1 and s // args.bs in (4, 19):
                log(f"  step {s // args.bs + 1}: {cnt / (time.time() - te):.1f} img/s")
        ttrain = time.time() - te
        if args.full_finetune and not args.freeze_stem:
            p_va = predict_units(model, u_va)
            p_ct = predict_units(model, u_ct)
        else:
            p_va = predict(model, v8, v16)
            p_ct = predict(model, c8, c16)
        a_all = auc(y_va, p_va)
        a_cc = auc(y_va[src_va == "covid-ct"], p_va[src_va == "covid-ct"])
        a_mm = auc(y_va[src_va == "mosmed"], p_va[src_va == "mosmed"])
        acc_cc = float(((p_va[src_va == "covid-ct"] >= 0.5) == y_va[src_va == "covid-ct"]).mean())
        m_p = ser_ct == "P001"
        a_p = auc(y_ct[m_p], p_ct[m_p])
        means = {s: float(np.mean(p_ct[ser_ct == s])) for s in ("P001", "cap001", "normal001")}
        rec = {"epoch": ep, "loss": tot / cnt, "valAuc": a_all, "valAucCovidCt": a_cc, "valAccCovidCt@0.5": acc_cc,
               "valAucMosmed": a_mm, "ctmdP001SliceAuc": a_p, "ctmdMeanProb": means,
               "imgPerSec": cnt / ttrain, "epochSeconds": time.time() - te}
        hist.append(rec)
        log(f"epoch {ep} loss {rec['loss']:.4f} valAUC {a_all:.4f} (covid-ct {a_cc:.4f} acc@.5 {acc_cc:.3f}, "
            f"mosmed {a_mm:.4f}) P001 sliceAUC {a_p:.3f} meanProb P001 {means['P001']:.3f} cap001 "
            f"{means['cap001']:.3f} normal001 {means['normal001']:.3f} | {rec['imgPerSec']:.1f} img/s "
            f"{rec['epochSeconds']:.0f}s")
        if a_all > best:
            best = a_all
            torch.save(model.state_dict(), os.path.join(run, "model.pt"))
            log(f"  saved best (valAUC {best:.4f})")
        if (time.time() - t0) / 60 > args.max_minutes:
            log("  stopping: time budget reached")
            break
    info = {"seed": SEED, "sourceWeights": sw, "trainImagesUsed": used, "args": vars(args), "history": hist, "bestValAuc": best,
            "durationSeconds": time.time() - t0, "epochsRun": len(hist)}
    with open(os.path.join(run, "train.json"), "w") as f:
        json.dump(info, f, indent=2)
    log(f"done in {time.time() - t0:.0f}s best valAUC {best:.4f}")


if __name__ == "__main__":
    main()

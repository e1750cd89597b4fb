"""What train.py (cached stride-8 features) and train_full.py (every block) share: their common arguments, the fold
split and sampling weights, the learning-rate schedule, the optimiser step, the per-epoch validation record, the log.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import time

import numpy as np
import torch

from metrics import auc

SEED = 20260525
WARMUP_STEPS = 50


def add_common_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--fold", required=True, help="0..4 or all")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3, help="attention and classifier heads")
    ap.add_argument("--lr-backbone", type=float, default=2e-4, help="blocks at strides 16-32")
    ap.add_argument("--smooth", type=float, default=0.1)
    ap.add_argument("--covidct-weight", type=float, default=2.0)
    ap.add_argument("--mosmed-weight", type=float, default=1.0)
    ap.add_argument("--draws-per-epoch", type=int, default=1600)
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=2)


def run_log(run: str):
    """A logger that prints a timestamped line and appends it to <run>/log.txt."""
    os.makedirs(run, exist_ok=True)
    f = open(os.path.join(run, "log.txt"), "a")

    def log(msg: str) -> None:
        line = f"{dt.datetime.utcnow().strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        f.write(line + "\n")
        f.flush()

    return log


class Split:
    """The training and validation indices of one fold of the dev set ("all": no validation), labels, sources and
    the per-image sampling weights of the training images."""

    def __init__(self, dev: list, fold_arg: str, weights: dict):
        fold = None if fold_arg == "all" else int(fold_arg)
        self.tr = np.array([i for i, it in enumerate(dev) if fold is None or it["fold"] != fold])
        self.va = np.array([i for i, it in enumerate(dev) if fold is not None and it["fold"] == fold], dtype=int)
        self.y = np.array([it["label"] for it in dev], np.float32)
        self.src = np.array([it["source"] for it in dev])
        self.w_tr = np.array([weights[dev[i]["source"]] for i in self.tr], np.float64)

    def draw(self, rng: np.random.RandomState, n: int) -> np.ndarray:
        """n training images drawn with replacement by their weights."""
        return self.tr[rng.choice(len(self.tr), size=n, replace=True, p=self.w_tr / self.w_tr.sum())]

    def record(self, rec: dict, p_va: np.ndarray, key: str = "") -> str:
        """Fold AUCs of the validation predictions (pooled and per source) into rec; returns the log fragment."""
        yv, sv = self.y[self.va], self.src[self.va]
        rec[f"valAuc{key}"] = auc(yv, p_va)
        rec[f"valAuc{key}CovidCt"] = auc(yv[sv == "covid-ct"], p_va[sv == "covid-ct"])
        rec[f"valAuc{key}Mosmed"] = auc(yv[sv == "mosmed"], p_va[sv == "mosmed"])
        return (f"{rec[f'valAuc{key}']:.4f} (covid-ct {rec[f'valAuc{key}CovidCt']:.4f}, "
                f"mosmed {rec[f'valAuc{key}Mosmed']:.4f})")


class Schedule:
    """Linear warm-up over WARMUP_STEPS, then cosine decay to zero over all steps, per parameter group."""

    def __init__(self, opt: torch.optim.Optimizer, total_steps: int):
        self.opt, self.total = opt, total_steps
        self.base = [g["lr"] for g in opt.param_groups]
        self.step = 0

    def update(self, loss: torch.Tensor) -> None:
        warm = min(1.0, (self.step + 1) / WARMUP_STEPS)
        cos = 0.5 * (1 + math.cos(math.pi * self.step / self.total))
        for g, b in zip(self.opt.param_groups, self.base):
            g["lr"] = b * warm * cos
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.step += 1


class Epoch:
    """Loss and speed of one training epoch."""

    def __init__(self, ep: int):
        self.ep, self.t0, self.tot, self.cnt = ep, time.time(), 0.0, 0

    def add(self, loss: torch.Tensor, n: int) -> None:
        self.tot += float(loss) * n
        self.cnt += n

    def seconds(self) -> float:
        return time.time() - self.t0

    def record(self) -> tuple:
        """The epoch's history record (epoch, mean loss, training images per second) and its log line so far."""
        rec = {"epoch": self.ep, "loss": self.tot / self.cnt, "imgPerSec": self.cnt / self.seconds()}
        return rec, f"epoch {self.ep} loss {rec['loss']:.4f}"


def smoothed(y: np.ndarray, smooth: float) -> torch.Tensor:
    """Label smoothing towards 0.5."""
    return torch.from_numpy(y) * (1 - smooth) + 0.5 * smooth


def finish(run: str, log, t0: float, args: argparse.Namespace, split: Split, weights: dict, hist: list,
           preds: dict, **info) -> None:
    """Writes <run>/preds.npz (val_idx, per-epoch val and ctmd predictions, mirrored ones) and <run>/train.json."""
    np.savez(os.path.join(run, "preds.npz"), **preds)
    out = {"seed": SEED, "fold": args.fold, **info, "sourceWeights": weights, "trainImages": int(len(split.tr)),
           "valImages": int(len(split.va)), "args": vars(args), "history": hist,
           "durationSeconds": time.time() - t0, "epochsRun": len(hist)}
    with open(os.path.join(run, "train.json"), "w") as f:
        json.dump(out, f, indent=2)
    log(f"done in {time.time() - t0:.0f}s")

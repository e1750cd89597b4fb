"""ML-SAM on MobileNetV2: multi-level spatial attention (Jetley et al. 2018 style) at strides 8, 16, 32.

features[0:7]   -> l8  [N, 32, 28, 28]   (frozen during training; cached)
features[7:14]  -> l16 [N, 96, 14, 14]   (frozen during training; cached)
features[14:18] -> l32 [N, 320, 7, 7]    (fine-tuned)
features[18]    -> [N, 1280, 7, 7] -> global average -> g (global feature, fine-tuned)
Per level s: u_s = Conv1x1(l_s) (D ch); c_s = w_s^T ReLU(u_s + W_g g)  (additive compatibility; a pure
dot-product 'pc' score would let g cancel out in the softmax); a_s = softmax over space (sums to 1);
d_s = sum_xy a_s * u_s.  logit = Linear(concat(d_8, d_16, d_32)); prob = sigmoid(logit).
Fused map: each a_s divided by its spatial max, bilinearly upsampled to 28x28 (align_corners=False),
averaged over levels, then min-max normalised per slice to [0, 1].
BatchNorm layers always stay in eval mode (the pretrained BN is folded TFLite bias; see data README).
Stride-2 convolutions use TF 'SAME' padding (0 top/left, 1 bottom/right) like the original TFLite net.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DATA = os.path.join(REPO, "..", "shared", "data")
PRETRAINED = os.path.join(DATA, "pretrained", "mobilenet_v2_imagenet_coral.npz")


def _tf_same(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Conv2d) and child.stride == (2, 2):
            child.padding = (0, 0)
            setattr(module, name, nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), child))
        else:
            _tf_same(child)


def build_backbone(pretrained: bool = True) -> nn.Module:
    m = torchvision.models.mobilenet_v2()
    if pretrained:
        sd = {k: torch.from_numpy(v) for k, v in np.load(PRETRAINED).items()}
        m.load_state_dict(sd)
    _tf_same(m)
    return m.features


class MLSAM(nn.Module):
    def __init__(self, dim: int = 128, dropout: float = 0.3, pretrained: bool = True):
        super().__init__()
        f = build_backbone(pretrained)
        self.stem = f[:7]
        self.mid = f[7:14]
        self.high = f[14:18]
        self.top = f[18]
        chans = (32, 96, 320)
        self.proj = nn.ModuleList([nn.Conv2d(c, dim, 1) for c in chans])
        self.gproj = nn.ModuleList([nn.Linear(1280, dim) for _ in chans])
        self.score = nn.ModuleList([nn.Conv2d(dim, 1, 1) for _ in chans])
        self.drop = nn.Dropout(dropout)
        self.cls = nn.Linear(dim * len(chans), 1)

    def frozen(self):
        return [self.stem, self.mid]

    def trainable_backbone(self):
        return [self.high, self.top]

    def heads(self):
        return [self.proj, self.gproj, self.score, self.cls]

    train_mid = False  # set by train.py --unfreeze-mid

    def set_train_mode(self):
        self.train()
        for mod in self.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.eval()
        for m in ([self.stem] if self.train_mid else self.frozen()):
            m.eval()

    def forward_features(self, l8: torch.Tensor, l16: torch.Tensor):
        l32 = self.high(l16)
        g = self.top(l32).mean(dim=(2, 3))
        descs, maps = [], []
        for i, l in enumerate((l8, l16, l32)):
            u = self.proj[i](l)
            gp = self.gproj[i](g)[:, :, None, None]
            c = self.score[i](F.relu(u + gp))  # [N,1,h,w]
            n, _, h, w = c.shape
            a = torch.softmax(c.reshape(n, h * w), dim=1).reshape(n, 1, h, w)
            descs.append((a * u).sum(dim=(2, 3)))
            maps.append(a)
        logit = self.cls(self.drop(torch.cat(descs, dim=1))).squeeze(1)
        return logit, maps

    @staticmethod
    def fuse(maps):
        ups = []
        for a in maps:
            n = a.shape[0]
            amax = a.reshape(n, -1).max(dim=1).values.reshape(n, 1, 1, 1)
            a = a / amax
            if a.shape[-1] != 28:
                a = F.interpolate(a, size=(28, 28), mode="bilinear", align_corners=False)
            ups.append(a)
        f = torch.stack(ups, 0).mean(0)
        n = f.shape[0]
        flat = f.reshape(n, -1)
        lo = flat.min(dim=1).values.reshape(n, 1, 1, 1)
        hi = flat.max(dim=1).values.reshape(n, 1, 1, 1)
        return (f - lo) / (hi - lo + 1e-8)

    def forward(self, x: torch.Tensor):
        l8 = self.stem(x)
        l16 = self.mid(l8)
        logit, maps = self.forward_features(l8, l16)
        prob = torch.sigmoid(logit)
        return prob, maps[0], maps[1], maps[2], self.fuse(maps)

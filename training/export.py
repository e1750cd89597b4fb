"""Export ML-SAM to ONNX + metadata JSON + golden fixtures.

Usage: /usr/bin/python3 training/export.py [--checkpoint training/runs/<run>/model.pt] [--provisional]

Files written
  models/mlsam-mobilenetv2-<VERSION>.onnx   opset 17, input `input` float32 [N,3,224,224] (N dynamic);
                                        outputs prob [N], att_s8 [N,1,28,28], att_s16 [N,1,14,14],
                                        att_s32 [N,1,7,7] (softmax maps, each sums to 1 over space),
                                        attention [N,1,28,28] (fused, min-max normalised to [0,1] per slice)
  models/mlsam-mobilenetv2-<VERSION>.json   metadata (see MODEL_CARD.md / training/README.md)
  tests/fixtures/model/preproc-<uid>.{f32,json}   (make_fixtures.py)
  tests/fixtures/model/golden.json

golden.json format (read by the onnxruntime-node test, tolerance 1e-4 max abs per element):
{
  "model": {"name", "version", "onnxFile", "sha256"},
  "tolerance": 1e-4,
  "cases": [
    { "name": "formula",
      "input": { "type": "formula", "shape": [2,3,224,224],
                 "formula": "x[n,c,h,w] = sin(a*(h+1)*(n+1)) * cos(b*(w+1)+c)", "a": 0.05, "b": 0.07,
                 "dtype": "float32 (computed in float64, rounded to float32)" },
      "outputs": { "<output name>": { "shape": [...], "data": [flat row-major numbers] }, ... } },
    { "name": "real-slice",
      "input": { "type": "fixture", "file": "preproc-<uid>.f32", "fileShape": [224,224],
                 "shape": [1,3,224,224], "note": "the one-channel plane repeated to 3 channels" },
      "outputs": { ...same five outputs... } }
  ]
}
Output names in every case: prob, att_s8, att_s16, att_s32, attention.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_fixtures import FIX, preproc_fixture  # noqa: E402
from model import MLSAM  # noqa: E402
from preprocess import PREPROCESSING  # noqa: E402

REPO = os.path.dirname(HERE)
NAME, VERSION = "mlsam-mobilenetv2", "2.2.0"
MODELS = os.path.join(REPO, "models")
ONNX = os.path.join(MODELS, f"{NAME}-{VERSION}.onnx")
META = os.path.join(MODELS, f"{NAME}-{VERSION}.json")
OUT_NAMES = ["prob", "att_s8", "att_s16", "att_s32", "attention"]

OUTPUTS_DOC = {
    "prob": "[N] probability (sigmoid applied) that the slice shows a COVID-19 pneumonia pattern",
    "att_s8": "[N,1,28,28] stride-8 spatial attention (softmax over space: each map sums to 1)",
    "att_s16": "[N,1,14,14] stride-16 spatial attention (softmax over space: each map sums to 1)",
    "att_s32": "[N,1,7,7] stride-32 spatial attention (softmax over space: each map sums to 1)",
    "attention": "[N,1,28,28] fused map: mean of the three level maps (each divided by its max, bilinearly "
    "upsampled to 28x28), min-max normalised per slice to [0,1]; upsample to the crop box of the slice "
    "(see preprocessing.crop) for a heatmap",
}


def formula_input(n=2, a=0.05, b=0.07):
    nn_, c, h, w = np.meshgrid(np.arange(n), np.arange(3), np.arange(224), np.arange(224), indexing="ij")
    x = np.sin(a * (h + 1) * (nn_ + 1)) * np.cos(b * (w + 1) + c)
    return x.astype(np.float32)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


class WithFlipTTA(torch.nn.Module):
    """prob = mean of the network on the slice and on its mirror image; the attention maps are the slice's own."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        prob, a8, a16, a32, att = self.net(x)
        prob_flip = self.net(torch.flip(x, dims=[3]))[0]
        return (prob + prob_flip) / 2, a8, a16, a32, att


def run(model, x):
    with torch.no_grad():
        outs = model(torch.from_numpy(x))
    return {k: v.numpy() for k, v in zip(OUT_NAMES, outs)}


def as_json(outs):
    return {k: {"shape": list(v.shape), "data": [round(float(t), 8) for t in v.reshape(-1)]} for k, v in outs.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--results", default=None, help="results.json written by evaluate.py")
    ap.add_argument("--previous", default=None, help="the version this one replaces, for the metadata's lineage")
    ap.add_argument("--changes", default=None, help="one line on what changed from --previous, for the lineage")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = MLSAM()
    provisional = args.checkpoint is None
    if not provisional:
        model.load_state_dict(torch.load(args.checkpoint, map_location="cpu"))
    model.eval()
    results = {}
    if args.results:
        with open(args.results) as f:
            results = json.load(f)
    tta = bool(results.get("slice", {}).get("tta", False))
    if tta:
        model = WithFlipTTA(model).eval()

    os.makedirs(MODELS, exist_ok=True)
    dummy = torch.from_numpy(formula_input(2))
    torch.onnx.export(
        model, dummy, ONNX, opset_version=17, input_names=["input"], output_names=OUT_NAMES,
        dynamic_axes={"input": {0: "N"}, **{k: {0: "N"} for k in OUT_NAMES}}, do_constant_folding=True,
    )
    import onnx

    onnx.checker.check_model(onnx.load(ONNX))
    digest = sha256(ONNX)

    meta = {
        "name": NAME,
        "version": VERSION,
        "onnxFile": os.path.basename(ONNX),
        "sha256": digest,
        "createdAt": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "provisional": provisional,
        "backbone": "MobileNetV2 (ImageNet, ../shared/data/pretrained)",
        "architecture": "ML-SAM: additive spatial attention at strides 8/16/32 on MobileNetV2 features "
        "(Learn-to-Pay-Attention style), attended descriptors concatenated -> linear -> sigmoid",
        "opset": 17,
        "input": {"name": "input", "channels": 3, "height": 224, "width": 224, "layout": "NCHW", "dtype": "float32"},
        "preprocessing": PREPROCESSING,
        "outputs": OUTPUTS_DOC,
        "attentionNormalization": {"att_s8": "softmax-sum-1", "att_s16": "softmax-sum-1", "att_s32": "softmax-sum-1",
                                   "attention": "minmax-0-1"},
        "classes": {"1": "COVID-19 pneumonia pattern", "0": "no COVID-19 pattern (normal or other findings)"},
        "testTimeAugmentation": "prob averages the slice and its left-right mirror image (in the graph)" if tta else "none",
        "slice": results.get("slice", {"threshold": 0.5}),
        "series": results.get("series", {
            "aggregation": {"method": "topk-mean", "kFraction": 0.1, "kMin": 3,
                            "description": "mean of the k highest slice probabilities, "
                            "k = min(n, max(kMin, ceil(kFraction * n))), n = number of scored slices"},
            "threshold": 0.5, "indeterminateMargin": 0.1, "keySlices": 5}),
        **({"quantification": results["quantification"]} if "quantification" in results else {}),
        **({"fusion": results["fusion"]} if "fusion" in results else {}),
        "metrics": results.get("metrics", {}),
        "training": results.get("training", {"note": "provisional export: ImageNet backbone, untrained head"}),
        "intendedUse": "Research triage aid only. NOT FOR DIAGNOSTIC USE.",
        **({"lineage": {"previous": args.previous, "changes": args.changes or "",
                        "exportedBy": "training/export.py"}} if args.previous else {}),
    }
    with open(META, "w") as f:
        json.dump(meta, f, indent=2)

    # golden fixtures
    fx = preproc_fixture()
    real = np.repeat(np.fromfile(fx["file"], dtype="<f4").reshape(1, 1, 224, 224), 3, axis=1)
    golden = {
        "model": {"name": NAME, "version": VERSION, "onnxFile": os.path.basename(ONNX), "sha256": digest},
        "tolerance": 1e-4,
        "cases": [
            {"name": "formula",
             "input": {"type": "formula", "shape": [2, 3, 224, 224],
                       "formula": "x[n,c,h,w] = sin(a*(h+1)*(n+1)) * cos(b*(w+1)+c)", "a": 0.05, "b": 0.07,
                       "dtype": "float32 (computed in float64, rounded to float32)"},
             "outputs": as_json(run(model, formula_input(2)))},
            {"name": "real-slice",
             "input": {"type": "fixture", "file": os.path.basename(fx["file"]), "fileShape": [224, 224],
                       "shape": [1, 3, 224, 224], "source": fx["meta"]["source"],
                       "note": "the one-channel plane repeated to 3 channels"},
             "outputs": as_json(run(model, real))},
        ],
    }
    with open(os.path.join(FIX, "golden.json"), "w") as f:
        json.dump(golden, f)
    print("exported", ONNX, digest, "provisional" if provisional else args.checkpoint)
    print("golden real-slice prob", golden["cases"][1]["outputs"]["prob"]["data"])


if __name__ == "__main__":
    main()

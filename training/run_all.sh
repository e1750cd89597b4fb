#!/bin/sh
# Train mlsam-mobilenetv2 2.x from scratch and export it. Run from the repository root:
#   nohup nice -n 5 sh training/run_all.sh > training/runs/run_all.log 2>&1 &
# Needs /usr/bin/python3 with Debian python3-torch 1.13, python3-torchvision 0.14, python3-scipy,
# python3-pydicom + python3-gdcm, python3-onnx, PIL; data in ../shared/data. Seeded; CPU only.
# A retrained CNN is a new model: set VERSION in training/export.py to a new version first (a rerun reproduces the
# recipe, not the bytes: see training/README.md). For HU-side changes with the shipped CNN use refit_fusion.py.
set -eu
EPOCHS="${EPOCHS:-12}"
PY=/usr/bin/python3
R=training/runs
$PY training/data.py                                   # index, folds, lung-cropped 224x224 caches, stride-8 features
for k in 0 1 2 3 4; do                                 # 5-fold cross-validation on covid-ct train+val and mosmed
  [ -f "$R/lung-fold$k/preds.npz" ] || $PY training/train.py --fold "$k" --epochs "$EPOCHS" --run "$R/lung-fold$k"
done
$PY training/cv.py                                     # out-of-fold metrics, epoch count, slice threshold -> $R/cv.json
E=$($PY -c "import json; print(json.load(open('$R/cv.json'))['chosenEpochs'])")
[ -f "$R/lung-all/model.pt" ] || $PY training/train.py --fold all --epochs "$E" --run "$R/lung-all"
$PY training/evaluate.py --run "$R/lung-all" --cv "$R/cv.json"   # fusion on COVID-CT-MD, test once -> results.json
$PY training/export.py --checkpoint "$R/lung-all/model.pt" --results "$R/lung-all/results.json"
$PY training/model_card.py                             # refresh the generated tables in MODEL_CARD.md

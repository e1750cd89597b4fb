#!/bin/sh
# Train mlsam-mobilenetv2 from scratch and export it. Run from the repository root:
#   nohup nice -n 5 sh training/run_all.sh > training/runs/run_all.log 2>&1 &
# Needs /usr/bin/python3 with Debian python3-torch 1.13, python3-torchvision 0.14, python3-pydicom + python3-gdcm,
# python3-onnx, PIL; data in ../shared/data. Everything is seeded; the CPU is the only device used.
set -eu
EPOCHS="${EPOCHS:-12}"
RUN="${RUN:-training/runs/$(date -u +%Y%m%d-%H%M%S)}"
PY=/usr/bin/python3
$PY training/data.py                                  # index + preprocessed 224x224 cache + frozen features
# shipped configuration (run 20261125-mid2): strides 16-32 fine-tuned, backbone lr 2e-4, label smoothing 0.1,
# 1,600 weighted draws per epoch (covid-ct 2, mosmed 1, sars-cov-2-ct 0); per-epoch log in $RUN/log.txt
$PY training/train.py --unfreeze-mid --epochs "$EPOCHS" --lr-backbone 2e-4 --smooth 0.1 --run "$RUN"
$PY training/evaluate.py --run "$RUN"                  # thresholds on validation, test once -> $RUN/results.json
$PY training/export.py --checkpoint "$RUN/model.pt" --results "$RUN/results.json"  # ONNX + metadata + fixtures
$PY training/model_card.py                             # refresh the generated tables in MODEL_CARD.md

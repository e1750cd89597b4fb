#!/bin/sh
# Full fine-tuning (training/train_full.py) on a device machine with a GPU: 5-fold cross-validation, the epoch
# count from cv.py, the final model on all dev images. Prepare here first (data does not travel, ../shared stays):
#   /usr/bin/python3 training/data.py && /usr/bin/python3 training/gpu_pack.py      # -> training/gpu-pack (~38 MiB)
# then, through the device tool:  run  command="sh training/gpu_run.sh"  carry=["training/gpu-pack"]
# It writes to $OUT: full-runs.tgz (logs, train.json, preds.npz of every run, cv.json) and model.pt (the final
# model). Back here: unpack into training/runs/full, then evaluate.py / export.py / model_card.py as in
# run_all.sh (training/README.md, "Full fine-tuning on a GPU"). THREADS: CPU threads for the online augmentation.
set -eu
P=training/gpu-pack/units.npz
T="${THREADS:-8}"
PY="${PY:-python3}"   # the device image's python3 holds PyTorch; here: PY=/usr/bin/python3
O="${OUT:-training/runs/gpu}"
R="${RUNS:-/tmp/mlsam-full}"
X="${EXTRA:-}"   # more train_full.py flags, e.g. a smoke run here: EXTRA="--draws-per-epoch 32 --epochs 2 --no-ctmd"
mkdir -p "$R" "$O"
# whatever happens, the logs and predictions come back (the fold checkpoints stay: 16 MiB per file comes back)
pack_up() { [ -f "$R/full-all/model.pt" ] && mv "$R/full-all/model.pt" "$O/model.pt"; rm -f "$R"/full-fold*/model.pt
            tar -C "$R" -czf "$O/full-runs.tgz" .; }
trap pack_up EXIT
export PYTHONUNBUFFERED=1
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
for k in 0 1 2 3 4; do
  $PY training/train_full.py --fold "$k" --pack "$P" --threads "$T" --run "$R/full-fold$k" $X
done
$PY training/cv.py --runs "$R" --prefix full-fold --pack "$P" > "$R/cv.txt"
E=$($PY -c "import json; print(json.load(open('$R/cv.json'))['chosenEpochs'])")
$PY training/train_full.py --fold all --epochs "$E" --pack "$P" --threads "$T" --run "$R/full-all" $X
cat "$R/cv.txt"

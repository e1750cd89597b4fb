#!/bin/sh
# Full fine-tuning cross-validation on this CPU, resumable across sessions (issue 28): each finished fold's small
# outputs (preds.npz, train.json, log.txt; not model.pt) are copied to training/results/full/fold<k>/ and committed
# at once, and a rerun skips every fold found there. Run from the repository root, in the background:
#   nohup nice -n 19 sh training/full_cv.sh > training/runs/full_cv.log 2>&1 &
# When all five folds are there it writes training/results/full/cv.json (cv.py) and the verdict of the adoption rule
# written down before the run (training/results/full/RULE.md) to training/results/full/verdict.json.
# On a GPU, training/gpu_run.sh does the folds in minutes; unpack its runs into training/results/full the same way.
set -eu
PY=/usr/bin/python3
R=training/runs/full            # working runs (model.pt, gitignored)
K=training/results/full         # committed, small
mkdir -p "$R" "$K"
. training/commit.sh
$PY training/data.py --units-only
for k in 0 1 2 3 4; do
  if [ -f "$K/fold$k/preds.npz" ]; then echo "fold $k: done in an earlier run, skipped"; continue; fi
  $PY training/train_full.py --fold "$k" --run "$R/full-fold$k"
  mkdir -p "$K/fold$k"
  cp "$R/full-fold$k/preds.npz" "$R/full-fold$k/train.json" "$K/fold$k/"
  [ -f "$R/full-fold$k/log.txt" ] && cp "$R/full-fold$k/log.txt" "$K/fold$k/"
  COMMIT_MSG="training: full fine-tuning fold $k finished on this CPU (resumable cross-validation, issue 28)" commit "$K/fold$k"
done
# cv.py reads <runs>/<prefix><k>/{preds.npz,train.json}
for k in 0 1 2 3 4; do mkdir -p "$R/cv/fold$k"; cp "$K/fold$k/preds.npz" "$K/fold$k/train.json" "$R/cv/fold$k/"; done
$PY training/cv.py --runs "$R/cv" --prefix fold > "$R/cv/cv.txt"
cp "$R/cv/cv.json" "$K/cv.json"
$PY training/full_verdict.py --cv "$K/cv.json" > "$K/verdict.json" || true
COMMIT_MSG="training: full fine-tuning cross-validation complete, cv.json and the adoption verdict" commit "$K/cv.json" "$K/verdict.json"
cat "$R/cv/cv.txt" "$K/verdict.json"

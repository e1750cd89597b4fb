#!/bin/sh
# After the full fine-tuning cross-validation (training/full_cv.sh) has written its verdict: when the rule written
# before the run (training/results/full/RULE.md) says adopt, train the final model on every dev image for the chosen
# epoch count and evaluate it once (evaluate.py: the fusion on the COVID-CT-MD series, the COVID-CT test split looked
# at once), committing the small outputs of each step as it finishes. When the verdict says no, it stops: nothing is
# adopted and the test split stays unseen. Run from the repository root, in the background:
#   nohup nice -n 2 sh training/full_final.sh > training/runs/full_final.log 2>&1 &
# About 25 min of an idle 2-core VM for the training, a few minutes for the evaluation. A rerun skips what is
# committed (the final run's model.pt is not committed: if a session ends between the two steps, the training reruns).
# What it leaves to a person: a new VERSION in training/export.py, export.py --checkpoint training/runs/full/full-all/
# model.pt --results training/results/full/final/results.json, model_card.py, and the node's side (default model,
# golden tests), as for any new CNN (training/README.md).
set -eu
PY=/usr/bin/python3
R=training/runs/full
K=training/results/full
V="$K/verdict.json"
[ -f "$V" ] || { echo "no $V yet: run training/full_cv.sh to the end first"; exit 1; }
if ! $PY -c "import json,sys; sys.exit(0 if json.load(open('$V'))['adopt'] else 1)"; then
  echo "the verdict says do not adopt (see $V): nothing to do, the test split stays unseen"; exit 0
fi
. training/commit.sh
E=$($PY -c "import json; print(json.load(open('$V'))['chosenEpochs'])")
mkdir -p "$K/final"
if [ ! -f "$R/full-all/model.pt" ]; then
  $PY training/data.py --units-only
  $PY training/train_full.py --fold all --epochs "$E" --run "$R/full-all"
  cp "$R/full-all/train.json" "$K/final/"
  [ -f "$R/full-all/log.txt" ] && cp "$R/full-all/log.txt" "$K/final/"
  COMMIT_MSG="training: the final fully fine-tuned CNN trained on every dev image ($E epochs, issue 28)" commit "$K/final"
fi
if [ ! -f "$K/final/results.json" ]; then
  $PY training/evaluate.py --run "$R/full-all" --cv "$K/cv.json"
  cp "$R/full-all/results.json" "$K/final/results.json"
  COMMIT_MSG="training: the final fully fine-tuned CNN evaluated once (fusion on COVID-CT-MD, COVID-CT test split looked at once, issue 28)" commit "$K/final/results.json"
fi
echo "done: $K/final/results.json"

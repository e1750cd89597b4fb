"""Would the pattern category help the fused score? The check behind MODEL_CARD.md's answer (issue 28), from the
node's own output (no torch):

  for s in P001 cap001 normal001; do node dist/cli/main.js score --json ../shared/data/covid-ct-md/$s > /tmp/ctmd/$s.json; done
  /usr/bin/python3 training/pattern_fusion_check.py /tmp/ctmd

Candidate, written before it was computed: series score = burden gate x (w x CNN score + (1 - w) x pattern score),
pattern score 1 typical, 0.5 indeterminate, 0 atypical or no opacity; w = 1 is the shipped fusion. Leave one
series out would choose w on the other two series, by how far it puts the COVID-19 series above the other
pneumonia; with one series per class, holding out P001 or cap001 leaves no such pair, so there is nothing to choose
w from. The table shows what fixed weights would do, for information.
"""
from __future__ import annotations

import json
import os
import sys

SERIES = ("P001", "cap001", "normal001")
PATTERN_SCORE = {"typical": 1.0, "indeterminate": 0.5, "atypical": 0.0, "no-opacity": 0.0}


def main() -> None:
    folder = sys.argv[1] if len(sys.argv) > 1 else "/tmp/ctmd"
    rows = {}
    for s in SERIES:
        with open(os.path.join(folder, f"{s}.json")) as f:
            ser = json.load(f)["series"][0]
        p = ser["pattern"]
        rows[s] = {"score": ser["score"], "cnn": ser["cnnScore"], "burden": ser["score"] / ser["cnnScore"] if ser["cnnScore"] else 0.0,
                   "category": ser["category"], "pattern": p["category"], "features": p["features"]}
    print("| Series | Pattern (rsna-distribution-v1) | Shipped score (w = 1) | w = 0.75 | w = 0.5 |")
    print("|---|---|---|---|---|")
    for s, r in rows.items():
        cells = []
        for w in (1.0, 0.75, 0.5):
            cells.append(f"{r['burden'] * (w * r['cnn'] + (1 - w) * PATTERN_SCORE[r['pattern']]):.3f}")
        print(f"| {s} | {r['pattern']} | " + " | ".join(cells) + " |")
    gap = {w: rows["P001"]["burden"] * (w * rows["P001"]["cnn"] + (1 - w) * PATTERN_SCORE[rows["P001"]["pattern"]])
           - rows["cap001"]["burden"] * (w * rows["cap001"]["cnn"] + (1 - w) * PATTERN_SCORE[rows["cap001"]["pattern"]]) for w in (1.0, 0.75, 0.5)}
    print("\nP001 - cap001 by w: " + ", ".join(f"{w}: {g:.3f}" for w, g in gap.items()))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()

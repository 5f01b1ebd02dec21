#!/usr/bin/env bash
# Quality per minute on MNIST, second round (issue 12): each candidate alone on top of the NEW default (v-prediction,
# 1,300 steps), at half its budget: 660 steps of batch 64, or the same images in other batches, or, for another
# network, the steps whose multiply-adds (ddpm info --model) equal 660 steps of mnist-small's (a cost model: measured
# minutes on the shared machine vary 2x from hour to hour). The baseline is the new default's own checkpoint at 660.
# Usage (from the repository root): bash experiments/quality-round2.sh   (THREADS=1 by default: it may run beside other work)
# Every run is seeded (seed 0) and scored with the fixed seeds of round one; finished steps are skipped on a rerun.
set -euo pipefail
OUT=${OUT:-experiments/results/quality/round2}
source "$(dirname "$0")/quality-common.sh"

# MNIST-small does 190.0 MMAC per image; ch 16 does 47.9 (x0.252), 2 residual blocks per level 277.2 (x1.459).
# (ch 24 was tried first and dropped: its 24 and 48 channels take SafeConv's unfolded path on the CPU, about 10x
# slower per multiply-add, so equal multiply-adds would not be equal time.)
candidates=(
  "batch32|--batch-size 32 --steps 1320"
  "cosine|--schedule cosine --steps 660"
  "ema-power-0.6|--ema-power 0.6 --steps 660"
  "ch16|--model experiments/configs/mnist-ch16.json --steps 2617"
  "2res|--model experiments/configs/mnist-2res.json --steps 452"
)
score experiments/results/quality/new-default/checkpoints/step_0000660 "$OUT/base.distance.json"
for entry in "${candidates[@]}"; do
  name=${entry%%|*}; read -ra opts <<< "${entry#*|}"
  if [ ! -f "$OUT/$name/checkpoints/latest" ]; then
    rm -rf "${OUT:?}/$name"
    "${DDPM[@]}" train -o "$OUT/$name" --data "$DATA" --seed 0 --checkpoint-every 0 --sample-count 16 "${COMMON[@]}" "${opts[@]}" > "$OUT/$name.train.log"
  fi
  score "$OUT/$name" "$OUT/$name.distance.json"
done

{
  echo "### Round 2: each change alone on the new default, at the cost of 660 of its steps; FD_classifier(mnist) of $COUNT samples"
  echo
  echo "| change | options | FD_classifier | IS analogue | class TV from the real digits | floor |"
  echo "| --- | --- | --- | --- | --- | --- |"
  row() { jq -r --arg l "$1" --arg o "$3" '"| \($l) | `\($o)` | \(.distance * 100 | round / 100) | \(.a.score.mean * 100 | round / 100) | \(.class_histogram_distance * 1000 | round / 1000) | \(.floor.distance * 100 | round / 100) |"' "$2"; }
  row "none (new default, step 660)" "$OUT/base.distance.json" ""
  for entry in "${candidates[@]}"; do row "${entry%%|*}" "$OUT/${entry%%|*}.distance.json" "${entry#*|}"; done
} > "$OUT/tables.md"
cat "$OUT/tables.md"

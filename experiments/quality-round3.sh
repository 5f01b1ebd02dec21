#!/usr/bin/env bash
# Quality per minute on MNIST, third round (issue 12): round two's helpful changes stacked on its winner, the ch-16
# network (experiments/configs/mnist-ch16.json, now the preset mnist-tiny), at the budget proposed for the new
# default run: 3,000 steps of batch 64, about 12 minutes of 2 threads on the reference machine (timed back to back
# before the runs: mnist-small 1.40 steps/s, ch 16 at batch 64 4.22 steps/s, ch 16 at batch 32 5.65 steps/s).
# Then the new default itself (`ddpm train` with no options, a checkpoint every 500 steps, which changes no number),
# every checkpoint scored by `ddpm evaluate` and drawn with the two earlier defaults by `ddpm plot`.
# Usage (from the repository root): bash experiments/quality-round3.sh [NAME...]   (NAME: a candidate or "default";
# default: all, then the tables; THREADS=1 so that two instances with different names can share the 2 cores)
# Every run is seeded (seed 0) and scored with the fixed seeds of rounds one and two; finished steps are skipped.
# Added in a later session and run one after the other with THREADS=2 after the default: cosine with batch 32 at
# 4,000 steps (the time of 3,000 of batch 64: 5.65 against 4.22 steps/s; measured then, 29.9 minutes against 34.5 for
# the ema candidate, which shared the cores with a CI run for part of its time) and cosine with --ema-power 0.6.
# Not run: ch 16 with the linear schedule at 3,000 steps (round two has it at 2,617: 31.7).
set -euo pipefail
OUT=${OUT:-experiments/results/quality/round3}
source "$(dirname "$0")/quality-common.sh"
CH16=(--model experiments/configs/mnist-ch16.json)

candidates=(
  "ch16-cosine|--schedule cosine --steps 3000"
  "ch16-cosine-batch32|--schedule cosine --batch-size 32 --steps 4000"
  "ch16-cosine-ema0.6|--schedule cosine --ema-power 0.6 --steps 3000"
)
wanted=("$@")
for entry in "${candidates[@]}"; do
  name=${entry%%|*}; read -ra opts <<< "${entry#*|}"
  [ ${#wanted[@]} -eq 0 ] || [[ " ${wanted[*]} " == *" $name "* ]] || continue
  if [ ! -f "$OUT/$name/checkpoints/latest" ]; then
    rm -rf "${OUT:?}/$name"
    "${DDPM[@]}" train -o "$OUT/$name" --data "$DATA" --seed 0 --checkpoint-every 1000 --keep-checkpoints 10 --sample-count 64 \
      "${COMMON[@]}" "${CH16[@]}" "${opts[@]}" > "$OUT/$name.train.log"
    cp "$OUT/$name/metrics.jsonl" "$OUT/$name.metrics.jsonl"
    cp "$OUT/$name/samples/final.png" "$OUT/$name.final.png"
  fi
  score "$OUT/$name" "$OUT/$name.distance.json"
done
# The new default: `ddpm train` with no options (mnist-tiny, cosine, v, 3,000 steps), its curve and the plot.
if [ ${#wanted[@]} -eq 0 ] || [[ " ${wanted[*]} " == *" default "* ]]; then
  if [ ! -f "$OUT/default/checkpoints/latest" ]; then
    rm -rf "${OUT:?}/default"
    "${DDPM[@]}" train -o "$OUT/default" --data "$DATA" --checkpoint-every 500 --keep-checkpoints 100 "${COMMON[@]}" > "$OUT/default.train.log"
  fi
  grep -q '"eval"' "$OUT/default/metrics.jsonl" || "${DDPM[@]}" evaluate "$OUT/default" --every 500 --eval-count "$COUNT" \
    --eval-real-count 10000 --eval-classifier mnist --eval-sampler dpm-solver "${COMMON[@]}" > "$OUT/default.evaluate.log"
  score "$OUT/default" "$OUT/default.distance.json"
  cp "$OUT/default/metrics.jsonl" "$OUT/default.metrics.jsonl"
  cp "$OUT/default/samples/final.png" "$OUT/default.final.png"
  Q=experiments/results/quality
  "${DDPM[@]}" plot "$Q/old-default" "$Q/new-default" "$OUT/default" -o "$OUT/mnist-curves.png" > /dev/null
fi
[ ${#wanted[@]} -eq 0 ] || exit 0

{
  echo "### Round 3: ch 16 with round two's changes, 3,000 steps of batch 64 or the same time; FD_classifier(mnist) of $COUNT samples"
  echo
  echo "| change | options | FD_classifier | IS analogue | class TV from the real digits | floor |"
  echo "| --- | --- | --- | --- | --- | --- |"
  row() { jq -r --arg l "$1" --arg o "$3" '"| \($l) | `\($o)` | \(.distance * 100 | round / 100) | \(.a.score.mean * 100 | round / 100) | \(.class_histogram_distance * 1000 | round / 1000) | \(.floor.distance * 100 | round / 100) |"' "$2"; }
  for entry in "${candidates[@]}"; do row "${entry%%|*}" "$OUT/${entry%%|*}.distance.json" "${CH16[*]} ${entry#*|}"; done
  row "the new default (ddpm train)" "$OUT/default.distance.json" "--data $DATA"
  echo
  echo "### The new default's curve (ddpm evaluate, $COUNT samples each; class TV here is from the uniform histogram)"
  echo
  echo "| step | minutes | FD_classifier | floor | IS analogue | class TV from uniform |"
  echo "| --- | --- | --- | --- | --- | --- |"
  jq -r 'select(.eval != null and .eval_count == '"$COUNT"') | "| \(.step) | \((.train_sec // 0) / 60 * 10 | round / 10) | \(.eval.fd_classifier * 100 | round / 100) | \(.eval.fd_classifier_floor * 100 | round / 100) | \(.eval.fd_classifier_score * 100 | round / 100) | \(.eval.fd_classifier_class_imbalance * 1000 | round / 1000) |"' \
    "$OUT/default.metrics.jsonl" | sort -t'|' -k2,2n
} > "$OUT/tables.md"
cat "$OUT/tables.md"

#!/usr/bin/env bash
# The Fashion-MNIST hour (issue 12): the default recipe (`ddpm train` with no options but the data and the length)
# on the 60,000 Fashion-MNIST training images for 5,500 steps of batch 64, sized to fit an hour of the 2-core
# reference machine at the throughput of its first 250 steps (113 images/s: 5,500 x 64 / 113 = 52 min; a first
# start with 7,000 steps was stopped when its estimate passed an hour).
# A checkpoint every 1,000 steps (this changes no number); then every checkpoint scored by `ddpm evaluate` against
# 10,000 training images (the curve), the last by `ddpm distance` against the 10,000 test images with the
# real-vs-real floor (the goal: at most 3x the floor), and the curve drawn by `ddpm plot`.
# Usage (from the repository root): FASHION=DIR bash experiments/fashion-hour.sh
#   OUT (the results folder), STEPS, EVERY (steps between checkpoints, 1,000) and EXTRA (options added to the
#   training command) select a variant, e.g. OUT=experiments/results/quality/fashion-hour-2 STEPS=11000 (a
#   results folder other than these needs its own lines in .gitignore to keep its run folder out of git). The hour
#   itself, whatever the machine's speed: STEPS=50000 EVERY=2000 EXTRA="--max-minutes 57" (training stops after 57
#   minutes of training, then the checkpoint and the final grid; fashion-hour-3).
#   DIR holds train-images-idx3-ubyte.gz and t10k-images-idx3-ubyte.gz (https://github.com/zalandoresearch/fashion-mnist);
#   default: ../shared/data/fashion-mnist. Finished steps are skipped when the script is run again.
set -euo pipefail
OUT=${OUT:-experiments/results/quality/fashion-hour}
FASHION=${FASHION:-../shared/data/fashion-mnist}
DATA=$FASHION/t10k-images-idx3-ubyte.gz THREADS=${THREADS:-2}
source "$(dirname "$0")/quality-common.sh"
STEPS=${STEPS:-5500}
EVERY=${EVERY:-1000}
read -ra EXTRA <<< "${EXTRA:-}"

run=$OUT/run
if [ ! -f "$run/checkpoints/latest" ]; then
  rm -rf "$run"
  start=$(date +%s)
  "${DDPM[@]}" train -o "$run" --data "$FASHION/train-images-idx3-ubyte.gz" --steps "$STEPS" \
    --checkpoint-every "$EVERY" --keep-checkpoints 100 "${COMMON[@]}" "${EXTRA[@]}" > "$OUT/train.log"
  echo "wall-clock seconds of the training command (data loading and the final grid included): $(( $(date +%s) - start ))" \
    | tee "$OUT/wall-clock.txt"
  cp "$run/samples/final.png" "$OUT/final.png"
fi
grep -q '"eval"' "$run/metrics.jsonl" || "${DDPM[@]}" evaluate "$run" --every "$EVERY" --eval-count "$COUNT" \
  --eval-real-count 10000 --eval-classifier fashion-mnist --eval-sampler dpm-solver "${COMMON[@]}" > "$OUT/evaluate.log"
cp "$run/metrics.jsonl" "$OUT/metrics.jsonl"
[ -f "$OUT/distance.json" ] || "${DDPM[@]}" distance "$run" "$DATA" --classifier fashion-mnist --count "$COUNT" \
  --sampler dpm-solver --seed 0 -o "$OUT/distance.json" "${COMMON[@]}" > "$OUT/distance.json.log"
"${DDPM[@]}" plot "$run" -o "$OUT/fashion-curve.png" > /dev/null

{
  echo "### The Fashion-MNIST hour: \`ddpm train --data train-images-idx3-ubyte.gz --steps $STEPS${EXTRA[*]:+ ${EXTRA[*]}}\`"
  echo
  echo "$(cat "$OUT/wall-clock.txt")"
  echo
  echo "| reference | FD_classifier(fashion-mnist) | floor | ratio to the floor | IS analogue | class TV from the real images |"
  echo "| --- | --- | --- | --- | --- | --- |"
  jq -r '"| the 10,000 test images | \(.distance * 100 | round / 100) | \(.floor.distance * 100 | round / 100) | \(.distance / .floor.distance * 100 | round / 100) | \(.a.score.mean * 100 | round / 100) | \(.class_histogram_distance * 1000 | round / 1000) |"' "$OUT/distance.json"
  echo
  echo "### The curve (ddpm evaluate, $COUNT samples against 10,000 training images; class TV here is from the uniform histogram)"
  echo
  echo "| step | minutes | FD_classifier | floor | IS analogue | class TV from uniform |"
  echo "| --- | --- | --- | --- | --- | --- |"
  jq -r 'select(.eval != null) | "| \(.step) | \((.train_sec // 0) / 60 * 10 | round / 10) | \(.eval.fd_classifier * 100 | round / 100) | \(.eval.fd_classifier_floor * 100 | round / 100) | \(.eval.fd_classifier_score * 100 | round / 100) | \(.eval.fd_classifier_class_imbalance * 1000 | round / 1000) |"' \
    "$OUT/metrics.jsonl" | sort -t'|' -k2,2n
} > "$OUT/tables.md"
cat "$OUT/tables.md"

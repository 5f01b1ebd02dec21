#!/usr/bin/env bash
# Quality per minute on MNIST, third round (issue 12): round two's helpful changes stacked on its winner, the ch-16
# network (experiments/configs/mnist-ch16.json), at the budget proposed for the new default run: 3,000 steps of
# batch 64, about 12 minutes of 2 threads on the reference machine (timed back to back before the runs: mnist-small
# 1.40 steps/s, ch 16 at batch 64 4.22 steps/s, ch 16 at batch 32 5.65 steps/s). Batch 32 gets the steps that take
# the same time (4,000), not the same images: on a network this small the per-step work does not halve with the batch.
# Usage (from the repository root): bash experiments/quality-round3.sh [NAME...]   (default: every candidate, then
# the table; THREADS=1 so that two instances with different names can run side by side on the 2 cores)
# Every run is seeded (seed 0) and scored with the fixed seeds of rounds one and two; finished steps are skipped.
set -euo pipefail
DATA=${DATA:-data/mnist-10k/images-idx3-ubyte.gz}
OUT=${OUT:-experiments/results/quality/round3}
COUNT=${COUNT:-1000}
THREADS=${THREADS:-1}
DDPM=(${DDPM:-dotnet src/Ddpm.Cli/bin/Release/net10.0/Ddpm.Cli.dll})
[ -n "${DDPM_PREBUILT:-}" ] || dotnet build src/Ddpm.Cli -c Release -v q -nologo > /dev/null
mkdir -p "$OUT"
COMMON=(--no-progress --threads "$THREADS" --device cpu)
CH16=(--model experiments/configs/mnist-ch16.json)

score() { # checkpoint, report.json: FD_classifier against all 10,000 digits, with the real-vs-real floor
  [ -f "$2" ] || "${DDPM[@]}" distance "$1" "$DATA" --classifier mnist --count "$COUNT" --sampler dpm-solver --seed 0 \
    -o "$2" "${COMMON[@]}" > "$2.log"
}

candidates=(
  "ch16|--steps 3000"
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
[ ${#wanted[@]} -eq 0 ] || exit 0

{
  echo "### Round 3: ch 16 with round two's changes, 3,000 steps of batch 64 or the same time; FD_classifier(mnist) of $COUNT samples"
  echo
  echo "| change | options | FD_classifier | IS analogue | class TV from the real digits | floor |"
  echo "| --- | --- | --- | --- | --- | --- |"
  row() { jq -r --arg l "$1" --arg o "$3" '"| \($l) | `\($o)` | \(.distance * 100 | round / 100) | \(.a.score.mean * 100 | round / 100) | \(.class_histogram_distance * 1000 | round / 1000) | \(.floor.distance * 100 | round / 100) |"' "$2"; }
  for entry in "${candidates[@]}"; do row "${entry%%|*}" "$OUT/${entry%%|*}.distance.json" "${CH16[*]} ${entry#*|}"; done
} > "$OUT/tables.md"
cat "$OUT/tables.md"

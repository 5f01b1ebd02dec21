#!/usr/bin/env bash
# Quality per minute on MNIST (issue 12): what each candidate change to the default run buys at equal cost, and the
# curve of FD_classifier against minutes of training for the old default and the new one.
# Usage (from the repository root): bash experiments/quality-per-minute.sh
# Every run is seeded (seed 0) and every score uses fixed seeds; the seeds were fixed before any run. Steps already
# done (a run folder with a checkpoint, a JSON report) are skipped, so the script can be stopped and started again.
# Needs jq for the tables.
set -euo pipefail

DATA=${DATA:-data/mnist-10k/images-idx3-ubyte.gz}   # the bundled digits: training data and reference set
OUT=${OUT:-experiments/results/quality}
COUNT=${COUNT:-1000}                 # samples per score (DPM-Solver++, 20 steps, EMA weights)
ABLATION_STEPS=${ABLATION_STEPS:-550} # the equal budget of the ablation: half the old default's 1,100 steps
CURVE_EVERY=${CURVE_EVERY:-110}      # checkpoint every N steps of the two defaults
EVAL_EVERY=${EVAL_EVERY:-220}        # a curve point every N steps (and at the end): about 3 to 4 minutes of training
THREADS=${THREADS:-0}

dotnet build src/Ddpm.Cli -c Release -v q -nologo > /dev/null
DDPM=(dotnet src/Ddpm.Cli/bin/Release/net10.0/Ddpm.Cli.dll)
mkdir -p "$OUT"
COMMON=(--no-progress --threads "$THREADS" --device cpu)

# The default run before issue 12, spelled out. Its grid is drawn here with DPM-Solver++ (20 steps) instead of its
# 1,000 ancestral steps (4.5 minutes on the reference machine): the training is the old default's. The options an
# ablation may change are kept apart, so that an entry's own value replaces the old default's (an option given
# twice is an error).
OLD_FIXED=(--data "$DATA" --preset mnist-small --warmup-steps 100 --schedule linear --ema-decay 0.9999 --seed 0
  --sample-sampler dpm-solver)
OLD_VARIED=(--steps 1100 --batch-size 64 --learning-rate 1e-3 --loss-weighting none --prediction eps)
OLD_DEFAULT=("${OLD_FIXED[@]}" "${OLD_VARIED[@]}")
old_default_with() { # options...: prints the old default's options with these replacing its own, one per line
  local i
  printf '%s\n' "${OLD_FIXED[@]}"
  for ((i = 0; i < ${#OLD_VARIED[@]}; i += 2)); do
    [[ " $* " == *" ${OLD_VARIED[i]} "* ]] || printf '%s\n' "${OLD_VARIED[i]}" "${OLD_VARIED[i + 1]}"
  done
  printf '%s\n' "$@"
}
# The default run after issue 12: `ddpm train` with no options.
NEW_DEFAULT=(--data "$DATA")

train() { # name, options...
  local name=$1; shift
  [ -f "$OUT/$name/checkpoints/latest" ] && return
  rm -rf "${OUT:?}/$name"
  "${DDPM[@]}" train -o "$OUT/$name" "${COMMON[@]}" "$@" > "$OUT/$name.train.log"
}

score() { # checkpoint, report.json: FD_classifier against all 10,000 digits, with the real-vs-real floor
  [ -f "$2" ] || "${DDPM[@]}" distance "$1" "$DATA" --classifier mnist --count "$COUNT" --sampler dpm-solver --seed 0 \
    -o "$2" "${COMMON[@]}" > "$2.log"
}

# 1. The ablation: each candidate alone on top of the old default, at the same budget (ABLATION_STEPS steps of the
#    same network, so the same time, except batch 32, which sees the same images in twice the steps).
train old-default "${OLD_DEFAULT[@]}" --checkpoint-every "$CURVE_EVERY" --keep-checkpoints 100
base=$(printf "%s/old-default/checkpoints/step_%07d" "$OUT" "$ABLATION_STEPS")
score "$base" "$OUT/ab-base.distance.json"
ablation=(
  "min-snr|--loss-weighting min-snr"
  "p2|--loss-weighting p2"
  "v|--prediction v"
  "v-min-snr|--prediction v --loss-weighting min-snr"
  "lr2e-3|--learning-rate 2e-3"
  "batch32|--batch-size 32 --steps $((ABLATION_STEPS * 2))"
)
for entry in "${ablation[@]}"; do
  name=${entry%%|*}; read -ra opts <<< "${entry#*|}"
  [[ " ${opts[*]} " == *" --steps "* ]] || opts+=(--steps "$ABLATION_STEPS")
  mapfile -t all < <(old_default_with "${opts[@]}")
  train "ab-$name" "${all[@]}" --checkpoint-every 0 --sample-count 16
  score "$OUT/ab-$name" "$OUT/ab-$name.distance.json"
done

# 2. The curves: the new default with a checkpoint every CURVE_EVERY steps, every kept checkpoint of both defaults
#    scored by `ddpm evaluate` (the --eval-every evaluator, against all 10,000 digits), then drawn by `ddpm plot`.
train new-default "${NEW_DEFAULT[@]}" --checkpoint-every "$CURVE_EVERY" --keep-checkpoints 100
for run in old-default new-default; do
  "${DDPM[@]}" evaluate "$OUT/$run" --every "$EVAL_EVERY" --eval-count "$COUNT" --eval-real-count 10000 --eval-classifier mnist \
    --eval-sampler dpm-solver "${COMMON[@]}" >> "$OUT/$run.evaluate.log"
  score "$OUT/$run" "$OUT/$run.final.distance.json"
  cp "$OUT/$run/metrics.jsonl" "$OUT/$run.metrics.jsonl"   # the run folders are not committed; their curves are
done
"${DDPM[@]}" plot "$OUT/old-default" "$OUT/new-default" -o "$OUT/mnist-curves.png" > /dev/null

# 3. The tables.
row() { # label, report, options
  jq -r --arg l "$1" --arg o "$3" '"| \($l) | `\($o)` | \(.distance * 100 | round / 100) | \(.a.score.mean * 100 | round / 100) | \(.class_histogram_distance * 1000 | round / 1000) | \(.floor.distance * 100 | round / 100) |"' "$2"
}
{
  echo "### Ablation: each change alone, $ABLATION_STEPS steps of batch 64 (the same cost), FD_classifier(mnist) of $COUNT samples"
  echo
  echo "| change | options | FD_classifier | IS analogue | class TV from the real digits | floor |"
  echo "| --- | --- | --- | --- | --- | --- |"
  row "none (old default)" "$OUT/ab-base.distance.json" ""
  for entry in "${ablation[@]}"; do row "${entry%%|*}" "$OUT/ab-${entry%%|*}.distance.json" "${entry#*|}"; done
  echo
  echo "### The two defaults at their end"
  echo
  echo "| run | options | FD_classifier | IS analogue | class TV from the real digits | floor |"
  echo "| --- | --- | --- | --- | --- | --- |"
  row "old default (1,100 steps)" "$OUT/old-default.final.distance.json" "${OLD_DEFAULT[*]}"
  row "new default (ddpm train)" "$OUT/new-default.final.distance.json" "${NEW_DEFAULT[*]}"
  echo
  echo "### Curves: FD_classifier against minutes of training (ddpm evaluate, $COUNT samples each)"
  echo
  echo "| run | step | minutes | FD_classifier | floor | IS analogue | class TV from uniform |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  for run in old-default new-default; do
    jq -r --arg r "$run" 'select(.eval != null and .eval_count == '"$COUNT"') | "| \($r) | \(.step) | \((.train_sec // 0) / 60 * 10 | round / 10) | \(.eval.fd_classifier * 100 | round / 100) | \(.eval.fd_classifier_floor * 100 | round / 100) | \(.eval.fd_classifier_score * 100 | round / 100) | \(.eval.fd_classifier_class_imbalance * 1000 | round / 1000) |"' \
      "$OUT/$run/metrics.jsonl" | sort -t'|' -k3,3n -s
  done
} > "$OUT/tables.md"
cat "$OUT/tables.md"

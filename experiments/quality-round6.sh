#!/usr/bin/env bash
# Quality per minute on MNIST, sixth round (issue 12): which sampler draws the fourth default's samples best. The
# model is fixed (round five's run, step 6,000, EMA weights); only the sampler and its steps change. Each variant is
# scored by `ddpm distance` exactly as the earlier rounds (1,000 samples, seed 0, against the 10,000 bundled digits,
# with the real-vs-real floor), and the seconds each took are recorded, since the default run's final grid and its
# evaluations pay for the sampler's steps.
# Usage (from the repository root, after quality-round5.sh): bash experiments/quality-round6.sh
set -euo pipefail
OUT=${OUT:-experiments/results/quality/round6}
THREADS=${THREADS:-2}
source "$(dirname "$0")/quality-common.sh"
run=experiments/results/quality/round5/default/checkpoints/step_0006000

variant() { # name, sampler options...
  local name=$1; shift
  local report=$OUT/$name.distance.json
  if [ ! -f "$report" ]; then
    local start=$(date +%s)
    "${DDPM[@]}" distance "$run" "$DATA" --classifier mnist --count "$COUNT" --seed 0 -o "$report" "${COMMON[@]}" "$@" > "$report.log"
    echo $(( $(date +%s) - start )) > "$OUT/$name.seconds"
  fi
}
variant dpm-solver-20 --sampler dpm-solver
variant dpm-solver-50 --sampler dpm-solver --sample-steps 50
variant ddim-50 --sampler ddim
variant ddim-100 --sampler ddim --sample-steps 100
variant ddpm-100 --sampler ddpm --sample-steps 100
variant ddpm-250 --sampler ddpm --sample-steps 250
# The paper's sampler over all 1,000 steps was started and stopped: about 40 minutes for 1,000 samples here.

{
  echo "### The fourth default's step-6,000 EMA weights under each sampler; FD_classifier(mnist) of $COUNT samples against the 10,000 digits"
  echo
  echo "| sampler | options | FD_classifier | IS analogue | class TV from the real digits | floor | seconds (1,000 samples and the scoring) |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  for v in dpm-solver-20 dpm-solver-50 ddim-50 ddim-100 ddpm-100 ddpm-250; do
    row=$(report_row "$v" "$OUT/$v.distance.json" "${v%-*} ${v##*-} steps")
    echo "${row} $(cat "$OUT/$v.seconds") |"
  done
} > "$OUT/tables.md"
cat "$OUT/tables.md"

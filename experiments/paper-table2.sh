#!/usr/bin/env bash
# The paper's Table 2 ablation at CPU scale on Fashion-MNIST, and a table of quality against sampling steps.
# Usage (from the repository root): bash experiments/paper-table2.sh
# Settings can be overridden through the environment (defaults below); everything is seeded, so a rerun with the
# same settings on the same machine gives the same numbers. Needs jq to assemble the tables.
set -euo pipefail

DATA=${DATA:-../shared/data/fashion-mnist/train-images-idx3-ubyte.gz}
TEST=${TEST:-../shared/data/fashion-mnist/t10k-images-idx3-ubyte.gz}
STEPS=${STEPS:-150}          # optimizer steps per model (equal budget), batch 64
WARMUP=${WARMUP:-20}         # learning-rate warm-up steps
COUNT=${COUNT:-256}          # samples per offline distance in table 1
STEP_COUNT=${STEP_COUNT:-128} # samples per entry of table 2
EVAL_STEPS=${EVAL_STEPS:-50} # respaced ancestral steps for table 1 (uses each model's own variance)
NLL_COUNT=${NLL_COUNT:-16}   # test images in the bound (all T terms each)
SEED=${SEED:-0}
T=${T:-1000}                 # diffusion steps
THREADS=${THREADS:-0}
OUT=${OUT:-experiments/results}

dotnet build src/Ddpm.Cli -c Release -v q -nologo > /dev/null
DDPM=(dotnet src/Ddpm.Cli/bin/Release/net10.0/Ddpm.Cli.dll)
mkdir -p "$OUT"
COMMON=(--no-progress --threads "$THREADS" --device cpu)

train() { # name, extra options...
  local name=$1; shift
  if [ -f "$OUT/$name/checkpoints/latest" ]; then return; fi
  rm -rf "${OUT:?}/$name"
  "${DDPM[@]}" train --data "$DATA" --steps "$STEPS" --timesteps "$T" --warmup-steps "$WARMUP" --seed "$SEED" --sample-count 4 -o "$OUT/$name" \
    --checkpoint-every 0 "${COMMON[@]}" "$@" > "$OUT/$name.train.log"
}

score() { # run, json, sampler, steps, count
  [ -f "$2" ] || "${DDPM[@]}" distance "$1" "$TEST" --classifier fashion-mnist --count "$5" --sampler "$3" --sample-steps "$4" \
    --seed "$SEED" -o "$2" "${COMMON[@]}" > "$2.log"
}

# Table 1: {eps, mu} x {L_simple, L_vlb} x {fixed, learned Sigma}. "Learned" is learned_range (improved DDPM's
# interpolation, the stable form); with L_simple a learned Sigma is trained by the hybrid loss (L_simple alone
# gives the variance no gradient), as improved DDPM does.
rows=()
for pred in eps mu; do
  for loss in simple vlb; do
    for sigma in fixed learned; do
      name="$pred-$loss-$sigma"
      opts=(--prediction "$pred")
      if [ "$sigma" = fixed ]; then opts+=(--variance fixedlarge --loss "$loss"); else
        opts+=(--variance learned-range); if [ "$loss" = simple ]; then opts+=(--loss hybrid); else opts+=(--loss vlb); fi; fi
      train "$name" "${opts[@]}"
      score "$OUT/$name" "$OUT/$name.distance.json" ddpm "$EVAL_STEPS" "$COUNT"
      [ -f "$OUT/$name.nll.json" ] || "${DDPM[@]}" nll -c "$OUT/$name" --data "$TEST" --count "$NLL_COUNT" --batch-size "$NLL_COUNT" \
        --seed "$SEED" -o "$OUT/$name.nll.json" "${COMMON[@]}" > "$OUT/$name.nll.log"
      rows+=("$name|${opts[*]}")
    done
  done
done

# Table 2: quality against sampling steps, on the paper's model (eps, L_simple, fixed).
base="$OUT/eps-simple-fixed"
for sampler in ddpm ddim dpm-solver; do
  for n in 10 20 50 100; do [ "$n" -le "$T" ] && score "$base" "$OUT/steps-$sampler-$n.json" "$sampler" "$n" "$STEP_COUNT"; done
done
[ "$T" -ge 1000 ] && score "$base" "$OUT/steps-ddpm-1000.json" ddpm 1000 "$STEP_COUNT"

# Assemble the tables.
{
  echo "## Table 1: the paper's ablation at CPU scale (Fashion-MNIST)"
  echo
  echo "$STEPS steps of batch 64 per model (warm-up $WARMUP, lr 1e-3, seed $SEED), T = $T linear, preset mnist-small. FD_classifier(fashion-mnist): $COUNT samples"
  echo "(ancestral, $EVAL_STEPS respaced steps) against the $(basename "$TEST") images; floor = two disjoint real sets of $COUNT."
  echo "Bits/dim: the variational bound on the first $NLL_COUNT test images (all T terms), mean ± standard error."
  echo
  echo "| prediction | loss | Sigma | options | FD_classifier | floor | bits/dim | prior | KL terms | decoder |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for row in "${rows[@]}"; do
    name=${row%%|*}; opts=${row#*|}
    IFS=- read -r pred loss sigma <<< "$name"
    d="$OUT/$name.distance.json"; l="$OUT/$name.nll.json"
    printf '| %s | %s | %s | `%s` | %.2f | %.2f | %.3f ± %.3f | %.4f | %.3f | %.3f |\n' "$pred" "L_$loss" "$sigma" "$opts" \
      "$(jq .distance "$d")" "$(jq .floor.distance "$d")" "$(jq .bits_per_dim.mean "$l")" "$(jq '.bits_per_dim.standard_error // 0' "$l")" \
      "$(jq .prior.mean "$l")" "$(jq .kl.mean "$l")" "$(jq .decoder.mean "$l")"
  done
  echo
  echo "## Table 2: quality against sampling steps (eps, L_simple, fixed Sigma)"
  echo
  echo "FD_classifier(fashion-mnist) of $STEP_COUNT samples (seed $SEED) against the test images; floor: two disjoint real sets of $STEP_COUNT."
  echo
  echo "| sampler | 10 | 20 | 50 | 100 | 1000 |"
  echo "| --- | --- | --- | --- | --- | --- |"
  for sampler in ddpm ddim dpm-solver; do
    line="| $sampler"
    for n in 10 20 50 100 1000; do
      f="$OUT/steps-$sampler-$n.json"
      if [ -f "$f" ]; then line+=" | $(printf %.2f "$(jq .distance "$f")")"; else line+=" | -"; fi
    done
    echo "$line |"
  done
  echo
  echo "floor: $(printf %.2f "$(jq .floor.distance "$OUT/steps-ddpm-10.json")")"
} > "$OUT/tables.md"
cat "$OUT/tables.md"

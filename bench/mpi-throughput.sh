#!/usr/bin/env bash
# Data-parallel throughput on one machine (issue 14): the default preset trained by one process with all cores'
# threads, then by mpirun -n N processes (cores / N threads each) on the same global batch, back to back in one run.
# Prints images/s of each (steps 20 to STEPS, from metrics.jsonl) and the all-reduce time per step rank 0 reports.
# Usage (from the repository root): bash bench/mpi-throughput.sh [N]   (needs mpirun; builds the CLI first)
set -euo pipefail
N=${1:-2}
STEPS=${STEPS:-80}
DDPM=(${DDPM:-dotnet src/Ddpm.Cli/bin/Release/net10.0/Ddpm.Cli.dll})
[ -n "${DDPM_PREBUILT:-}" ] || dotnet build src/Ddpm.Cli -c Release -v q -nologo > /dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=${YIELD:-0}   # 1: waiting processes give their core away (slower exchange, see README)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
CORES=$(nproc)
ARGS=(--data data/mnist-10k/images-idx3-ubyte.gz --steps "$STEPS" --log-every 10 --checkpoint-every 0 --sample-count 1
  --sample-sampler ddim --sample-steps 1 --no-progress --device cpu --seed 0)
rate() { # metrics.jsonl: mean images/s of the windows after step 20
  awk -F'"images_per_sec":' '/"images_per_sec"/ { split($2, a, ","); if (++n > 2) { s += a[1]; k++ } } END { printf "%.1f", s / k }' "$1"
}
"${DDPM[@]}" train -o "$WORK/one" "${ARGS[@]}" --threads "$CORES" > "$WORK/one.log"
mpirun -n "$N" --oversubscribe --bind-to none "${DDPM[@]}" train -o "$WORK/many" "${ARGS[@]}" --threads $((CORES / N > 0 ? CORES / N : 1)) > "$WORK/many.log" 2>&1
one=$(rate "$WORK/one/metrics.jsonl"); many=$(rate "$WORK/many/metrics.jsonl")
echo "machine: $CORES cores; $(mpirun --version | head -n 1); default preset (mnist-small), batch 64, steps 20-$STEPS"
echo "one process, $CORES threads: $one images/s"
echo "mpirun -n $N, $((CORES / N > 0 ? CORES / N : 1)) thread(s) each: $many images/s ($(awk -v a="$many" -v b="$one" 'BEGIN { printf "%.2f", a / b }')x)"
grep -h "communication:" "$WORK/many.log" || true
[ -n "${DDPM_PREBUILT:-}" ] || dotnet build bench/Ddpm.Bench -c Release -v q -nologo > /dev/null
mpirun -n "$N" --oversubscribe --bind-to none dotnet bench/Ddpm.Bench/bin/Release/net10.0/Ddpm.Bench.dll

#!/usr/bin/env bash
# Every GPU figure the open issues ask for, in one call of about 8 minutes (the checks' own limits add up to 585 s) on the lent GPU machine (one H200, Python
# with PyTorch and CUDA, no .NET; see ../shared/tools/gpu/README.md). A session with such a machine prepares here:
#   bash ../shared/tools/gpu/bundle.sh && DRY=1 bash experiments/gpu-checks.sh     # the dry run: CPU, a few minutes
# and then makes ONE device call, carry [".gpu"]:  OUT=$OUT bash experiments/gpu-checks.sh
# Each check writes its full output under OUT and a line to OUT/summary.txt; a failed check does not stop the others,
# and every check has its own time limit, so the figures of the checks before a hang still come back.
#   1. facts: GPU, driver, PyTorch, CUDA, NCCL, MPI (issues 9 and 14)
#   2. issue 9: the benchmark of the paper's network (ho-cifar10, batch 128) against the PyTorch peer with and without
#      its EMA in alternating rounds; the default model (mnist-tiny, batch 64) the same way; TF32 on for both; the GPU's busy share
#      (nvidia-smi every 250 ms) and each process's GPU memory while each runs
#   3. issue 9: a steady window of `ddpm train` alone (the busy share of C#'s loop without the peer)
#   4. issue 12: the GPU curve: the paper's network on 32x32 digits, distance against minutes, as far as 1.25 minutes of training go
#   5. issue 13: the export check with the PyTorch side on CUDA
#   6. issue 14: one rank per GPU under mpirun where the machine has an MPI (it had none when last seen)
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }

if [ -n "${DRY:-}" ]; then
  # Here: the same commands on the CPU with small sizes, to find a broken command before device time is spent on it.
  dotnet build src/Ddpm.Cli -c Release -v q -nologo > /dev/null && dotnet build bench/Ddpm.Bench -c Release -v q -nologo > /dev/null
  DDPM=(dotnet src/Ddpm.Cli/bin/Release/net10.0/Ddpm.Cli.dll)
  BENCH=(dotnet bench/Ddpm.Bench/bin/Release/net10.0/Ddpm.Bench.dll)
  DEV=cpu BIG_BATCH=4 BIG_STEPS=3 SMALL_STEPS=10 SAMPLE_STEPS=2 TRAIN_STEPS=20 CURVE_MIN=0.2 CURVE_EVERY=20 SMALL_TF32_STEPS=2 EVAL_COUNT=20
  GRID_STEPS=2 EVAL_REAL=40 MPI_STEPS=10
  PEER=${PEER:-off}
  [ -x /usr/bin/python3 ] && export PATH=/usr/bin:$PATH   # Debian's python3 has torch here
else
  bash .gpu/setup.sh > "$OUT/setup.txt" 2>&1 || { cat "$OUT/setup.txt"; exit 1; }
  DDPM=(.gpu/ddpm)
  BENCH=(.gpu/bench)
  DEV=cuda BIG_BATCH=128 BIG_STEPS=150 SMALL_STEPS=300 SAMPLE_STEPS=50 TRAIN_STEPS=400 CURVE_MIN=1.25 CURVE_EVERY=250 SMALL_TF32_STEPS=80 EVAL_COUNT=500
  GRID_STEPS=250 EVAL_REAL=5000 MPI_STEPS=100
  PEER=python3
fi
DATA=data/mnist-10k/images-idx3-ubyte.gz

# nvidia-smi in the background while a check runs: the GPU's busy share and memory, and each process's memory.
monitor_start() { # name
  command -v nvidia-smi > /dev/null || return 0
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 250 > "$OUT/$1.gpu.csv" 2>/dev/null &
  MON1=$!
  nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv,noheader,nounits -lms 500 > "$OUT/$1.apps.csv" 2>/dev/null &
  MON2=$!
}
monitor_stop() { # name: one summary line (mean busy share over the samples above 0 %, which skips start-up and gaps)
  command -v nvidia-smi > /dev/null || return 0
  kill "$MON1" "$MON2" 2>/dev/null; wait "$MON1" "$MON2" 2>/dev/null
  awk -F', ' -v n="$1" '{ all++; s += $1; if ($1 > 0) { b++; sb += $1 } if ($2 > m) m = $2 }
    END { if (all) printf "%s: GPU busy %.1f %% of %d samples (%.1f %% of the %d non-idle ones), peak memory used %d MiB\n", n, s / all, all, (b ? sb / b : 0), b, m }' \
    "$OUT/$1.gpu.csv" | tee -a "$SUMMARY"
  awk -F', ' '{ if ($3 > peak[$1 " " $2]) peak[$1 " " $2] = $3 } END { for (p in peak) printf "  process %s: peak %d MiB\n", p, peak[p] }' \
    "$OUT/$1.apps.csv" | tee -a "$SUMMARY"
}
check() { # name, seconds, command...: runs it with its own limit, its output in OUT/name.txt
  local name=$1 limit=$2; shift 2
  local start=$(date +%s)
  monitor_start "$name"
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  monitor_stop "$name"
  note "$name: exit $rc after $(( $(date +%s) - start )) s: $*"
}

# 1. Facts.
{
  date -u
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
    "nccl", torch.cuda.nccl.version() if torch.cuda.is_available() else None)' 2>&1
  python3 -c 'import os, torch, glob; print("nccl libraries:", glob.glob(os.path.join(os.path.dirname(torch.__file__), "..", "nvidia", "nccl", "lib", "*")))' 2>&1
  echo "mpirun: $(command -v mpirun || echo none)"; command -v mpirun > /dev/null && mpirun --version | head -1
  nproc; free -g | head -2
} > "$OUT/facts.txt" 2>&1
note "facts: $(tr '\n' ' ' < "$OUT/facts.txt" | cut -c1-400)"

# 2. Issue 9: the benchmark against the PyTorch peer in alternating rounds (TF32 as PyTorch's defaults on both sides).
check bench-ho-cifar10 180 "${BENCH[@]}" --device "$DEV" --preset ho-cifar10 --batch-size "$BIG_BATCH" --steps "$BIG_STEPS" --soak-steps 0 \
  --sample-steps "$SAMPLE_STEPS" --peer "$PEER" --peer-no-ema --peer-rounds 2
check bench-mnist-tiny 90 "${BENCH[@]}" --device "$DEV" --preset mnist-tiny --batch-size 64 --steps "$SMALL_STEPS" --soak-steps 0 \
  --sample-steps "$SAMPLE_STEPS" --peer "$PEER" --peer-rounds 2
# TF32 for matmuls and convolutions on both sides (PyTorch's default leaves matmuls in full fp32).
check bench-ho-cifar10-tf32 60 "${BENCH[@]}" --device "$DEV" --preset ho-cifar10 --batch-size "$BIG_BATCH" --steps "$SMALL_TF32_STEPS" \
  --soak-steps 0 --sample-steps "$SAMPLE_STEPS" --peer "$PEER" --tf32 on

# 3. Issue 9: C#'s training loop alone, for its busy share in a steady window (the log's images/s beside it).
check train-ho-cifar10 60 "${DDPM[@]}" train -o "$OUT/run-steady" --device "$DEV" --preset ho-cifar10 --data "$DATA" --image-size 32 \
  --batch-size "$BIG_BATCH" --steps "$TRAIN_STEPS" --checkpoint-every 0 --log-every 50 --sample-count 16 --sample-steps "$GRID_STEPS" --no-progress
tail -n 3 "$OUT/run-steady/metrics.jsonl" >> "$SUMMARY" 2>/dev/null

# 4. Issue 12: the GPU curve (32x32 digits; no RGB data set travels with the project), evaluated as training goes.
check curve-ho-cifar10 120 "${DDPM[@]}" train -o "$OUT/run-curve" --device "$DEV" --preset ho-cifar10 --data "$DATA" --image-size 32 \
  --batch-size "$BIG_BATCH" --steps 100000 --max-minutes "$CURVE_MIN" --eval-every "$CURVE_EVERY" --eval-count "$EVAL_COUNT" \
  --eval-real-count "$EVAL_REAL" --eval-classifier mnist --checkpoint-every 0 --sample-count 16 --sample-steps "$GRID_STEPS" --no-progress
grep '"eval"' "$OUT/run-curve/metrics.jsonl" >> "$SUMMARY" 2>/dev/null
rm -rf "$OUT/run-steady/checkpoints" "$OUT/run-curve/checkpoints" "$OUT"/run-*/tensorboard   # keep what comes back small

# 5. Issue 13: the folders `ddpm convert` writes, loaded by PyTorch on the GPU.
if [ -n "${DRY:-}" ]; then EXPORT_DDPM="${DDPM[*]}"; else EXPORT_DDPM=.gpu/ddpm; fi
check export-check 75 env DDPM="$EXPORT_DDPM" DDPM_PREBUILT=1 OUT="$OUT/interop" bash experiments/diffusers-export-check.sh --device "$DEV"

# 6. Issue 14: one rank per GPU (this machine has one GPU: two ranks share it, which checks the binding, not the speed).
if command -v mpirun > /dev/null; then
  check mpi-two-ranks 60 mpirun -n 2 --oversubscribe --allow-run-as-root "${DDPM[@]}" train -o "$OUT/run-mpi" --device "$DEV" \
    --preset mnist-tiny --data "$DATA" --batch-size 64 --steps "$MPI_STEPS" --checkpoint-every 0 --sample-count 16 --sample-steps "$GRID_STEPS" --no-progress
  rm -rf "$OUT/run-mpi/checkpoints"
else
  note "mpi: no mpirun on this machine: the one-rank-per-GPU check is not made"
fi
note "done: $(date -u)"

#!/usr/bin/env bash
# Crash harness (issue 11): kills a small `ddpm train` with SIGKILL at random moments N times, resuming after each
# kill, then checks what the README's "What survives what" promises:
#   - after every kill, the run folder resolves to a complete checkpoint that `ddpm sample` loads (once one exists);
#   - `--resume` reaches the end;
#   - the final model, EMA and optimizer bytes equal those of an uninterrupted run with the same settings.
# Usage: bench/crash-harness.sh [KILLS=20] [STEPS=60]   (builds the CLI first; about 1-3 minutes per 10 kills)
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-20}
steps=${2:-60}
dotnet build src/Ddpm.Cli -c Release -v quiet -nologo >/dev/null
cli=(dotnet src/Ddpm.Cli/bin/Release/net10.0/Ddpm.Cli.dll)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

# A small network so that a step takes milliseconds and a kill lands anywhere: in a step, a save, a rename.
cat > "$root/model.json" <<'JSON'
{ "in_channels": 1, "image_size": 28, "base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
  "attention_resolutions": [], "dropout": 0.1, "norm_groups": 4, "resample_with_conv": true }
JSON
common=(--model "$root/model.json" --max-images 256 --batch-size 8 --timesteps 50 --steps "$steps"
        --checkpoint-every 3 --keep-checkpoints 2 --log-every 1 --sample-count 4 --sample-sampler ddim
        --sample-steps 2 --threads 1 --no-progress)

"${cli[@]}" train "${common[@]}" --output "$root/straight" >/dev/null

run="$root/killed"
killed=0 before_first=0 loads=0 finished_early=0
for ((i = 1; i <= kills; i++)); do
  if [[ -f "$run/checkpoints/latest" ]]; then
    "${cli[@]}" train --resume "$run" --no-progress >/dev/null 2>&1 &
  else
    "${cli[@]}" train "${common[@]}" --output "$run" >/dev/null 2>&1 &
  fi
  pid=$!
  sleep "$(awk -v s=$RANDOM 'BEGIN { srand(s); printf "%.2f", 2 + 6 * rand() }')"
  if kill -9 "$pid" 2>/dev/null; then killed=$((killed + 1)); else finished_early=$((finished_early + 1)); fi
  wait "$pid" 2>/dev/null || true
  if ls "$run"/checkpoints/step_* >/dev/null 2>&1 || ls "$run"/checkpoints/.old-step_* >/dev/null 2>&1; then
    if "${cli[@]}" sample --checkpoint "$run" --count 2 --sampler ddim --sample-steps 2 --output "$root/s.png" --no-progress >/dev/null 2>&1; then
      loads=$((loads + 1))
    else
      echo "after kill $i: sample could not load the run's checkpoint" >&2
    fi
  else
    before_first=$((before_first + 1))
  fi
  [[ -f "$run/samples/final.png" ]] && break
done

if [[ -f "$run/checkpoints/latest" ]]; then
  "${cli[@]}" train --resume "$run" --no-progress >/dev/null
else
  "${cli[@]}" train "${common[@]}" --output "$run" >/dev/null
fi
final=$(printf 'step_%07d' "$steps")
same=0
for f in model.safetensors ema.safetensors optimizer.safetensors; do
  cmp -s "$root/straight/checkpoints/$final/$f" "$run/checkpoints/$final/$f" && same=$((same + 1))
done
echo "crash harness: $killed kill -9 during training ($before_first before the first checkpoint, $finished_early runs ended before their kill);"
echo "  sample loaded the run after $loads of $((killed + finished_early - before_first)) kills with a checkpoint;"
echo "  resumed to step $steps: $same of 3 checkpoint files (model, ema, optimizer) equal to the uninterrupted run's"
[[ $same -eq 3 && $loads -eq $((killed + finished_early - before_first)) ]]

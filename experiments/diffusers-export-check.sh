#!/usr/bin/env bash
# Issue 13: the folders `ddpm convert` writes load in plain PyTorch and give the C# network's forward output.
# bench/diffusers_unet_check.py is a PyTorch definition of diffusers' UNet2DModel (diffusers itself need not be
# installed); its self-test first shows it reproduces diffusers' own outputs on the fixtures diffusers wrote.
# Usage (from the repository root): bash experiments/diffusers-export-check.sh [--device cuda]
# Needs python3 with torch (Debian: apt-get install python3-torch). Writes experiments/results/interop/export-check.jsonl.
set -euo pipefail
PY=${PY:-python3}
OUT=${OUT:-experiments/results/interop}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
DDPM=${DDPM:-dotnet src/Ddpm.Cli/bin/Release/net10.0/Ddpm.Cli.dll}
[ -n "${DDPM_PREBUILT:-}" ] || dotnet build src/Ddpm.Cli -c Release -v q -nologo > /dev/null
FIX=tests/Ddpm.Tests/Interop/Fixtures
mkdir -p "$OUT"
RESULTS="$OUT/export-check.jsonl"
: > "$RESULTS"
DATA=data/mnist-10k/images-idx3-ubyte.gz
COMMON=(--data "$DATA" --max-images 64 --batch-size 8 --steps 3 --sample-count 4 --sample-sampler ddim --sample-steps 2
  --checkpoint-every 0 --log-every 1 --no-progress --device cpu)

# 1. The definition against diffusers itself.
$PY bench/diffusers_unet_check.py self-test "$FIX/cifar10-layout" "$FIX/grey28" "$@" | tee -a "$RESULTS"

# 2. Runs trained by `ddpm train` (3 steps: weights away from their initial values), exported with the C# output.
cat > "$WORK/diffusers-layout.json" <<'JSON'
{"in_channels": 1, "out_channels": 0, "image_size": 28, "base_channels": 32, "channel_mult": [1, 2, 2], "num_res_blocks": 1,
 "attention_resolutions": [7, 14], "dropout": 0.0, "norm_groups": 8, "resample_with_conv": true, "norm_eps": 1e-05,
 "flip_sin_to_cos": true, "freq_shift": 0, "downsample_padding": 1, "attention_head_channels": 16, "mid_attention": false}
JSON
declare -A RUNS=(
  [mnist-small]=""
  [ho-cifar10-grey32]="--preset ho-cifar10 --image-size 32"
  [diffusers-layout]="--model $WORK/diffusers-layout.json"
  [learned-range-v]="--variance learned-range --loss hybrid --prediction v"
)
for name in mnist-small ho-cifar10-grey32 diffusers-layout learned-range-v; do
  read -ra extra <<< "${RUNS[$name]}"
  $DDPM train -o "$WORK/$name" "${COMMON[@]}" "${extra[@]}" > "$WORK/$name.log"
  $DDPM convert "$WORK/$name" "$WORK/$name-diffusers" --reference-output "$WORK/$name.reference.safetensors" > /dev/null
  $PY bench/diffusers_unet_check.py check "$WORK/$name-diffusers" "$WORK/$name.reference.safetensors" "$@" \
    | sed "s|$WORK/|$name: |g" | tee -a "$RESULTS"
done

# 3. Folders with random weights in every tensor, written by the Python definition in layouts the fixtures do not
#    cover (diffusers' own defaults: [cos, sin] time code without shift, eps 1e-5, symmetric padding, heads of 8
#    channels; and no middle attention), read by `ddpm convert`: the C# network's output against the definition's.
cat > "$WORK/layout-a.json" <<'JSON'
{"sample_size": 16, "in_channels": 3, "out_channels": 3, "block_out_channels": [16, 32, 48],
 "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
 "norm_num_groups": 8}
JSON
cat > "$WORK/layout-b.json" <<'JSON'
{"sample_size": 28, "in_channels": 1, "out_channels": 2, "block_out_channels": [16, 32], "layers_per_block": 1,
 "down_block_types": ["AttnDownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "AttnUpBlock2D"], "norm_num_groups": 4,
 "attention_head_dim": 4, "add_attention": false, "flip_sin_to_cos": false, "freq_shift": 1, "norm_eps": 1e-6, "downsample_padding": 0}
JSON
for layout in layout-a layout-b; do
  $PY bench/diffusers_unet_check.py make "$WORK/$layout" "$WORK/$layout.json" 7
  $DDPM convert "$WORK/$layout" "$WORK/$layout-run" --reference-output "$WORK/$layout.reference.safetensors" > /dev/null
  $PY bench/diffusers_unet_check.py check "$WORK/$layout" "$WORK/$layout.reference.safetensors" "$@" | sed "s|$WORK/|$layout: |g" | tee -a "$RESULTS"
done

# 4. A diffusers folder with the older attention names, imported and exported again.
mkdir -p "$WORK/old/unet" "$WORK/old/scheduler"
cp "$FIX/cifar10-layout/model_index.json" "$WORK/old/"
cp "$FIX/cifar10-layout/unet/config.json" "$WORK/old/unet/"
cp "$FIX/cifar10-layout/unet/diffusion_pytorch_model.old-attention-names.bin" "$WORK/old/unet/diffusion_pytorch_model.bin"
cp "$FIX/cifar10-layout/scheduler/scheduler_config.json" "$WORK/old/scheduler/"
$DDPM convert "$WORK/old" "$WORK/old-run" > /dev/null
$DDPM convert "$WORK/old-run" "$WORK/old-again" --reference-output "$WORK/old.reference.safetensors" > /dev/null
$PY bench/diffusers_unet_check.py check "$WORK/old-again" "$WORK/old.reference.safetensors" "$@" | sed "s|$WORK/|old-names: |g" | tee -a "$RESULTS"
echo "all checks passed; figures in $RESULTS"

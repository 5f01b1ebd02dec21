"""Checks a diffusers DDPM folder in plain PyTorch, without diffusers (not installed on the GPU machine).

This is this project's own functional definition of diffusers' UNet2DModel forward pass for the block types DDPM
uses (DownBlock2D, AttnDownBlock2D, UpBlock2D, AttnUpBlock2D, UNetMidBlock2D), written from diffusers' definitions:
time code (flip_sin_to_cos, freq_shift), resnets with the time projection, attention over positions with heads of
attention_head_dim channels and softmax in float32, down-sampling with downsample_padding 0 (pad right and bottom)
or 1, nearest up-sampling and a conv. It reads the weights under both attention namings.

    python3 bench/diffusers_unet_check.py self-test FIXTURE_DIR...   # against diffusers' own reference outputs
    python3 bench/diffusers_unet_check.py check FOLDER REFERENCE.safetensors [--device cuda]
    python3 bench/diffusers_unet_check.py make FOLDER CONFIG.json SEED   # random weights N(0, 0.05^2) in that layout

`self-test` compares with `reference.safetensors` that diffusers' UNet2DModel wrote into each fixture folder, so it
shows that this definition is diffusers'. `check` loads a folder that `ddpm convert` wrote and compares its forward
pass with the C# network's output in REFERENCE (written by `ddpm convert ... --reference-output REFERENCE`). Each
prints one JSON line per folder and exits 1 when an error exceeds 1e-5 of the output's scale (float32 on the CPU;
on CUDA, TF32 is switched off for the comparison). `make` writes a DDPMPipeline folder whose every tensor is random
(named and shaped as UNet2DModel's constructor makes them), so that `ddpm convert FOLDER RUN --reference-output R`
followed by `check FOLDER R` tests the C# reader on layouts diffusers' fixtures do not cover.
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

DEFAULTS = {  # UNet2DModel's defaults for keys a config.json leaves out
    "in_channels": 3, "out_channels": 3, "freq_shift": 0, "flip_sin_to_cos": True,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [224, 448, 672, 896], "layers_per_block": 2, "downsample_padding": 1,
    "attention_head_dim": 8, "norm_num_groups": 32, "attn_norm_num_groups": None, "norm_eps": 1e-5, "add_attention": True,
}
DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32}
OLDER = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[a:b]), dtype=DTYPES[e["dtype"]]).reshape(e["shape"]).clone()
    return out


def load_folder(folder):
    unet = os.path.join(folder, "unet") if os.path.exists(os.path.join(folder, "unet", "config.json")) else folder
    with open(os.path.join(unet, "config.json")) as f:
        cfg = {**DEFAULTS, **json.load(f)}
    st = os.path.join(unet, "diffusion_pytorch_model.safetensors")
    weights = read_safetensors(st) if os.path.exists(st) else torch.load(os.path.join(unet, "diffusion_pytorch_model.bin"), map_location="cpu")
    return cfg, weights


class Net:
    def __init__(self, cfg, weights, device):
        self.cfg, self.w, self.used = cfg, {k: v.to(device) for k, v in weights.items()}, set()

    def p(self, name):
        if name not in self.w:
            for new, old in OLDER.items():
                name = name.replace("." + new + ".", "." + old + ".")
        self.used.add(name)
        return self.w[name]

    def conv(self, name, x, stride=1, padding=1):
        return F.conv2d(x, self.p(name + ".weight"), self.p(name + ".bias"), stride=stride, padding=padding)

    def linear(self, name, x):
        return F.linear(x, self.p(name + ".weight"), self.p(name + ".bias"))

    def norm(self, name, x, groups):
        return F.group_norm(x, groups, self.p(name + ".weight"), self.p(name + ".bias"), eps=self.cfg["norm_eps"])

    def resnet(self, name, x, emb):
        g = self.cfg["norm_num_groups"]
        h = self.conv(name + ".conv1", F.silu(self.norm(name + ".norm1", x, g)))
        h = h + self.linear(name + ".time_emb_proj", F.silu(emb))[:, :, None, None]
        h = self.conv(name + ".conv2", F.silu(self.norm(name + ".norm2", h, g)))
        if name + ".conv_shortcut.weight" in self.w:
            x = self.conv(name + ".conv_shortcut", x, padding=0)
        return x + h

    def attention(self, name, x):
        b, c, hh, ww = x.shape
        groups = self.cfg["attn_norm_num_groups"] or self.cfg["norm_num_groups"]
        d = self.cfg["attention_head_dim"] or c
        heads = c // d
        h = self.norm(name + ".group_norm", x, groups).reshape(b, c, hh * ww).transpose(1, 2)  # (B, HW, C)

        def split(t):  # (B, HW, C) -> (B * heads, HW, d)
            return t.reshape(b, hh * ww, heads, d).permute(0, 2, 1, 3).reshape(b * heads, hh * ww, d)
        q = split(self.linear(name + ".to_q", h))
        k = split(self.linear(name + ".to_k", h))
        v = split(self.linear(name + ".to_v", h))
        probs = (torch.bmm(q, k.transpose(1, 2)) * d ** -0.5).float().softmax(-1).to(q.dtype)
        o = torch.bmm(probs, v).reshape(b, heads, hh * ww, d).permute(0, 2, 1, 3).reshape(b, hh * ww, c)
        o = self.linear(name + ".to_out.0", o).transpose(1, 2).reshape(b, c, hh, ww)
        return o + x

    def time_code(self, t, dtype):
        dim = self.cfg["block_out_channels"][0]
        half = dim // 2
        exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - self.cfg["freq_shift"])
        e = t[:, None].float() * torch.exp(exponent)[None, :]
        e = torch.cat([torch.sin(e), torch.cos(e)], -1)
        if self.cfg["flip_sin_to_cos"]:
            e = torch.cat([e[:, half:], e[:, :half]], -1)
        if dim % 2:
            e = F.pad(e, (0, 1))
        return e.to(dtype)

    def forward(self, x, t):
        cfg = self.cfg
        levels, layers = len(cfg["block_out_channels"]), cfg["layers_per_block"]
        emb = self.linear("time_embedding.linear_2", F.silu(self.linear("time_embedding.linear_1", self.time_code(t, x.dtype))))
        h = self.conv("conv_in", x)
        skips = [h]
        for i, kind in enumerate(cfg["down_block_types"]):
            for j in range(layers):
                h = self.resnet(f"down_blocks.{i}.resnets.{j}", h, emb)
                if kind == "AttnDownBlock2D":
                    h = self.attention(f"down_blocks.{i}.attentions.{j}", h)
                skips.append(h)
            if i < levels - 1:
                if cfg["downsample_padding"] == 0:
                    h = self.conv(f"down_blocks.{i}.downsamplers.0.conv", F.pad(h, (0, 1, 0, 1)), stride=2, padding=0)
                else:
                    h = self.conv(f"down_blocks.{i}.downsamplers.0.conv", h, stride=2, padding=cfg["downsample_padding"])
                skips.append(h)
        h = self.resnet("mid_block.resnets.0", h, emb)
        if cfg["add_attention"]:
            h = self.attention("mid_block.attentions.0", h)
        h = self.resnet("mid_block.resnets.1", h, emb)
        for i, kind in enumerate(cfg["up_block_types"]):
            for j in range(layers + 1):
                h = self.resnet(f"up_blocks.{i}.resnets.{j}", torch.cat([h, skips.pop()], 1), emb)
                if kind == "AttnUpBlock2D":
                    h = self.attention(f"up_blocks.{i}.attentions.{j}", h)
            if i < levels - 1:
                h = self.conv(f"up_blocks.{i}.upsamplers.0.conv", F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = F.silu(self.norm("conv_norm_out", h, cfg["norm_num_groups"]))
        return self.conv("conv_out", h)


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        b = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def random_weights(cfg, seed):
    """Every tensor UNet2DModel's constructor makes for these block types, drawn N(0, 0.05^2)."""
    gen = torch.Generator().manual_seed(seed)
    w = {}

    def add(name, *shape):
        w[name] = torch.randn(*shape, generator=gen) * 0.05

    def affine(name, c, kernel=None):
        add(name + ".weight", *((c[0], c[1]) if kernel is None else (c[0], c[1], kernel, kernel)))
        add(name + ".bias", c[0])

    def norm(name, c):
        add(name + ".weight", c)
        add(name + ".bias", c)

    boc, layers = cfg["block_out_channels"], cfg["layers_per_block"]
    levels, temb = len(boc), 4 * boc[0]

    def resnet(name, cin, cout):
        norm(name + ".norm1", cin)
        affine(name + ".conv1", (cout, cin), 3)
        affine(name + ".time_emb_proj", (cout, temb))
        norm(name + ".norm2", cout)
        affine(name + ".conv2", (cout, cout), 3)
        if cin != cout:
            affine(name + ".conv_shortcut", (cout, cin), 1)

    def attention(name, c):
        norm(name + ".group_norm", c)
        for part in ("to_q", "to_k", "to_v", "to_out.0"):
            affine(f"{name}.{part}", (c, c))

    affine("time_embedding.linear_1", (temb, boc[0]))
    affine("time_embedding.linear_2", (temb, temb))
    affine("conv_in", (boc[0], cfg["in_channels"]), 3)
    out = boc[0]
    for i, kind in enumerate(cfg["down_block_types"]):
        cin, out = out, boc[i]
        for j in range(layers):
            resnet(f"down_blocks.{i}.resnets.{j}", cin if j == 0 else out, out)
            if kind == "AttnDownBlock2D":
                attention(f"down_blocks.{i}.attentions.{j}", out)
        if i < levels - 1:
            affine(f"down_blocks.{i}.downsamplers.0.conv", (out, out), 3)
    resnet("mid_block.resnets.0", boc[-1], boc[-1])
    if cfg["add_attention"]:
        attention("mid_block.attentions.0", boc[-1])
    resnet("mid_block.resnets.1", boc[-1], boc[-1])
    rev = boc[::-1]
    out = rev[0]
    for i, kind in enumerate(cfg["up_block_types"]):
        prev, out, cin = out, rev[i], rev[min(i + 1, levels - 1)]
        for j in range(layers + 1):
            resnet(f"up_blocks.{i}.resnets.{j}", (prev if j == 0 else out) + (cin if j == layers else out), out)
            if kind == "AttnUpBlock2D":
                attention(f"up_blocks.{i}.attentions.{j}", out)
        if i < levels - 1:
            affine(f"up_blocks.{i}.upsamplers.0.conv", (out, out), 3)
    norm("conv_norm_out", boc[0])
    affine("conv_out", (cfg["out_channels"], boc[0]), 3)
    return w


def make(folder, config_path, seed):
    with open(config_path) as f:
        given = json.load(f)
    cfg = {**DEFAULTS, **given}
    os.makedirs(os.path.join(folder, "unet"))
    os.makedirs(os.path.join(folder, "scheduler"))
    write_safetensors(os.path.join(folder, "unet", "diffusion_pytorch_model.safetensors"), random_weights(cfg, seed))
    with open(os.path.join(folder, "unet", "config.json"), "w") as f:
        json.dump({"_class_name": "UNet2DModel", **given}, f, indent=2)
    with open(os.path.join(folder, "scheduler", "scheduler_config.json"), "w") as f:
        learned = cfg["out_channels"] == 2 * cfg["in_channels"]
        json.dump({"_class_name": "DDPMScheduler", "num_train_timesteps": 1000,
                   "variance_type": "learned_range" if learned else "fixed_large"}, f, indent=2)
    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump({"_class_name": "DDPMPipeline", "scheduler": ["diffusers", "DDPMScheduler"], "unet": ["diffusers", "UNet2DModel"]}, f)
    return True


def compare(folder, reference, device):
    cfg, weights = load_folder(folder)
    ref = read_safetensors(reference)
    net = Net(cfg, weights, device)
    with torch.no_grad():
        y = net.forward(ref["x"].to(device), ref["t"].to(device)).cpu()
    unused = sorted(set(weights) - net.used)
    scale = ref["out"].abs().max().item()
    err = (y - ref["out"]).abs().max().item()
    ok = err <= 1e-5 * scale and not unused
    print(json.dumps({"folder": folder, "reference": reference, "device": str(device), "torch": torch.__version__,
                      "tensors": len(weights), "unused": unused[:3], "out_absmax": scale, "max_abs_err": err,
                      "relative": err / scale, "ok": ok}))
    return ok


def main(argv):
    device = torch.device("cpu")
    if "--device" in argv:
        i = argv.index("--device")
        device = torch.device(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if len(argv) >= 2 and argv[0] == "self-test":
        return 0 if all([compare(d, os.path.join(d, "reference.safetensors"), device) for d in argv[1:]]) else 1
    if len(argv) == 3 and argv[0] == "check":
        return 0 if compare(argv[1], argv[2], device) else 1
    if len(argv) == 4 and argv[0] == "make":
        return 0 if make(argv[1], argv[2], int(argv[3])) else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

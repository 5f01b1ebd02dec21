#!/usr/bin/env python3
"""The PyTorch peer of `bench/Ddpm.Bench`: the same U-Net, loss, optimiser, clipping and EMA, in PyTorch.

The benchmark (C#) writes a checkpoint of its freshly built model and a request (JSON); this script builds the
same network from the request's U-Net config, loads the checkpoint's `model.safetensors` by name (strict: the
project's state-dict names are those of the PyTorch port of the original DDPM network), checks that its forward
pass equals the C# one on the same input, then trains on the same data with the same recipe and prints one JSON
line of figures. It is a benchmark reference outside the product: nothing in the product needs Python.

Run by the benchmark (`--peer`); by hand: python3 bench/pytorch_peer.py REQUEST.json
Needs PyTorch (Debian: `apt-get install python3-torch`, 1.13) and numpy; no other package.
"""
import gzip
import json
import math
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------------------------
# safetensors (https://github.com/huggingface/safetensors, format only): u64 little-endian header length, a JSON
# header {name: {dtype, shape, data_offsets}}, then the raw little-endian bytes.
_DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32, "F16": torch.float16}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    body = memoryview(blob)[8 + n:]
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        t = torch.frombuffer(bytearray(body[start:end]), dtype=_DTYPES[meta["dtype"]])
        tensors[name] = t.reshape(meta["shape"])
    return tensors


# ---------------------------------------------------------------------------------------------------------------
# The network: the original DDPM U-Net (Ho et al. 2020, Appendix B), with the module names of its PyTorch port.
def group_norm(groups, channels):
    return nn.GroupNorm(groups, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout, tch, dropout, groups):
        super().__init__()
        self.norm1 = group_norm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb_proj = nn.Linear(tch, cout)
        self.norm2 = group_norm(groups, cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm = group_norm(groups, c)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        n, c, hh, ww = x.shape
        h = self.norm(x)
        q = self.q(h).reshape(n, c, hh * ww).transpose(1, 2)
        k = self.k(h).reshape(n, c, hh * ww)
        v = self.v(h).reshape(n, c, hh * ww)
        w = torch.softmax(torch.bmm(q, k) * (c ** -0.5), dim=2)
        return x + self.proj_out(torch.bmm(v, w.transpose(1, 2)).reshape(n, c, hh, ww))


class Downsample(nn.Module):
    def __init__(self, c, with_conv):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2) if with_conv else None

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1))) if self.conv is not None else F.avg_pool2d(x, 2, 2)


class Upsample(nn.Module):
    def __init__(self, c, with_conv):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1) if with_conv else None

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x) if self.conv is not None else x


class Level(nn.Module):
    def __init__(self, blocks, attns, resample, resample_name):
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attns)
        setattr(self, resample_name, resample)


class Mid(nn.Module):
    def __init__(self, c, tch, dropout, groups):
        super().__init__()
        self.block_1 = ResnetBlock(c, c, tch, dropout, groups)
        self.attn_1 = AttnBlock(c, groups)
        self.block_2 = ResnetBlock(c, c, tch, dropout, groups)


class TimestepEmbedding(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.ch = ch
        self.dense = nn.ModuleList([nn.Linear(ch, 4 * ch), nn.Linear(4 * ch, 4 * ch)])

    def forward(self, t):
        half = self.ch // 2
        freqs = torch.exp(torch.arange(half, dtype=torch.float64, device=t.device) * -(math.log(10000.0) / (half - 1)))
        args = t.to(torch.float64)[:, None] * freqs[None, :]
        e = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
        if self.ch % 2 == 1:
            e = F.pad(e, (0, 1))
        return self.dense[1](F.silu(self.dense[0](e.to(torch.float32))))


class UNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, mult, nres = cfg["base_channels"], cfg["channel_mult"], cfg["num_res_blocks"]
        groups, dropout, size = cfg["norm_groups"], cfg["dropout"], cfg["image_size"]
        attn_res, with_conv = set(cfg["attention_resolutions"]), cfg.get("resample_with_conv", True)
        cin = cfg["in_channels"]
        cout = cfg.get("out_channels") or cin
        tch, levels = 4 * ch, len(mult)
        self.nres, self.levels = nres, levels
        self.temb = TimestepEmbedding(ch)
        self.conv_in = nn.Conv2d(cin, ch, 3, padding=1)
        skips, block_in, down = [ch], ch, []
        for i in range(levels):
            out, blocks, attns = ch * mult[i], [], []
            for _ in range(nres):
                blocks.append(ResnetBlock(block_in, out, tch, dropout, groups))
                block_in = out
                if (size >> i) in attn_res:
                    attns.append(AttnBlock(block_in, groups))
                skips.append(block_in)
            ds = None
            if i != levels - 1:
                ds = Downsample(block_in, with_conv)
                skips.append(block_in)
            down.append(Level(blocks, attns, ds, "downsample"))
        self.down = nn.ModuleList(down)
        self.mid = Mid(block_in, tch, dropout, groups)
        up = [None] * levels
        for i in reversed(range(levels)):
            out, blocks, attns = ch * mult[i], [], []
            for _ in range(nres + 1):
                blocks.append(ResnetBlock(block_in + skips.pop(), out, tch, dropout, groups))
                block_in = out
                if (size >> i) in attn_res:
                    attns.append(AttnBlock(block_in, groups))
            up[i] = Level(blocks, attns, Upsample(block_in, with_conv) if i != 0 else None, "upsample")
        self.up = nn.ModuleList(up)
        self.norm_out = group_norm(groups, block_in)
        self.conv_out = nn.Conv2d(block_in, cout, 3, padding=1)

    def forward(self, x, t):
        emb = self.temb(t)
        hs = [self.conv_in(x)]
        for level in self.down:
            for j in range(self.nres):
                h = level.block[j](hs[-1], emb)
                if len(level.attn) > 0:
                    h = level.attn[j](h)
                hs.append(h)
            if level.downsample is not None:
                hs.append(level.downsample(hs[-1]))
        z = self.mid.block_2(self.mid.attn_1(self.mid.block_1(hs[-1], emb)), emb)
        for i in reversed(range(self.levels)):
            level = self.up[i]
            for j in range(self.nres + 1):
                z = level.block[j](torch.cat([z, hs.pop()], dim=1), emb)
                if len(level.attn) > 0:
                    z = level.attn[j](z)
            if level.upsample is not None:
                z = level.upsample(z)
        return self.conv_out(F.silu(self.norm_out(z)))


# ---------------------------------------------------------------------------------------------------------------
def read_idx_images(path, limit):
    """IDX (gzip or raw) uint8 images (N, H, W) -> float32 (N, 1, H, W) in [-1, 1], the first `limit` of them."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        blob = f.read()
    dims = blob[3]
    shape = struct.unpack(">" + "I" * dims, blob[4:4 + 4 * dims])
    arr = np.frombuffer(blob, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)[:limit]
    x = torch.from_numpy(arr.astype(np.float32) / 127.5 - 1.0)
    return x[:, None] if x.dim() == 3 else x


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(request_path):
    req = json.load(open(request_path))
    torch.set_num_threads(req["threads"])
    if req.get("tf32") is not None:  # as the C# side set it: TF32 matmuls and convolutions on or off
        torch.backends.cuda.matmul.allow_tf32 = bool(req["tf32"])
        torch.backends.cudnn.allow_tf32 = bool(req["tf32"])
    torch.manual_seed(req["seed"])
    device = torch.device(req["device"])
    model = UNet(req["unet"])
    state = read_safetensors(req["weights"])
    model.load_state_dict(state, strict=True)
    model.to(device)
    ema = UNet(req["unet"]).to(device)
    ema.load_state_dict(model.state_dict())
    for p in ema.parameters():
        p.requires_grad_(False)
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device),
              "parameters": sum(p.numel() for p in model.parameters()), "tensors_loaded": len(state)}

    # The same network: the C# forward pass on a fixed input, reproduced here.
    if req.get("check"):
        check = read_safetensors(req["check"])
        model.eval()
        with torch.no_grad():
            out = model(check["x"].to(device), check["t"].to(device)).cpu()
        result["forward_max_abs_diff"] = float((out - check["out"]).abs().max())
        result["forward_max_abs"] = float(check["out"].abs().max())

    # The same training work as the C# trainer: L_simple, Adam, global-norm clipping, EMA, one loss read per
    # `read_every` steps (the C# loop reads back at its log lines).
    data = read_idx_images(req["data"], req["max_images"]).to(device)
    size = req["unet"]["image_size"]
    if data.shape[-1] != size:  # the 28x28 digits for a 32x32 network (ho-cifar10), as the C# side resizes them
        data = F.interpolate(data, size=(size, size), mode="bilinear", align_corners=False)
    # alpha_bar_t of the C# run's schedule (float64 there), cast once as the C# diffusion does.
    alpha_bar = torch.tensor(req["alpha_bar"], dtype=torch.float64).to(torch.float32).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=req["lr"], eps=req["adam_eps"])
    params, ema_params = list(model.parameters()), list(ema.parameters())
    batch, decay = req["batch_size"], req["ema_decay"]
    model.train()

    read_every = req.get("read_every", 1)

    def step(i, with_ema=True):
        idx = torch.randint(0, data.shape[0], (batch,), device=device)
        x0 = data[idx]
        t = torch.randint(0, alpha_bar.shape[0], (batch,), device=device)
        noise = torch.randn_like(x0)
        ab = alpha_bar[t][:, None, None, None]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        loss = F.mse_loss(model(xt, t), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, req["grad_clip"])
        opt.step()
        if with_ema:
            with torch.no_grad():
                torch._foreach_mul_(ema_params, decay)
                torch._foreach_add_(ema_params, params, alpha=1 - decay)
        if (i + 1) % read_every == 0:
            loss.item()

    def timed(with_ema):
        for i in range(req["warmup_steps"]):
            step(i, with_ema)
        sync(device)
        start = time.perf_counter()
        for i in range(req["steps"]):
            step(i, with_ema)
        sync(device)
        return time.perf_counter() - start

    secs = timed(True)
    result["train_images_per_s"] = req["steps"] * batch / secs
    result["train_s_per_step"] = secs / req["steps"]
    result["read_every"] = read_every
    if req.get("no_ema"):  # the loop without the EMA: the second reference
        result["train_images_per_s_no_ema"] = req["steps"] * batch / timed(False)
    if device.type == "cuda":
        result["max_memory_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: pytorch_peer.py REQUEST.json")
    main(sys.argv[1])

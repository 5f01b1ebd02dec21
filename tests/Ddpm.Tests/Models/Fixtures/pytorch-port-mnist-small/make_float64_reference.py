# Adds a float64 reference in which the sinusoidal time embedding, too, is computed in float64.
#
# reference.safetensors (shared/fixtures/pytorch-port) holds `out_float64` from the port's net cast to float64 but fed
# the port's float32 embedding (cast to float64 after it was computed), so it carries the float32 rounding of t * freq
# (up to about 999 * 2^-24 in the argument of sin/cos). This script runs the same net on the same weights with the
# embedding formula of the original (half = d/2, freq_i = exp(-i ln(10000) / (half - 1)), [sin, cos]) evaluated in
# float64, so that a float64 forward can be compared at float64 rounding.
#
# Usage: python3 make_float64_reference.py PORT_DIR
#   PORT_DIR holds the PyTorch port's model.py (pesser/pytorch_diffusion, pytorch_diffusion/model.py) saved as
#   pesser_model.py. Reads model.safetensors and reference.safetensors beside this script; first checks that this
#   PyTorch reproduces `out` and `out_float64` of reference.safetensors exactly, then writes reference_float64.safetensors.
import json, math, os, struct, sys
import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, sys.argv[1])
import pesser_model as port

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64}


def read_safetensors(path):
    """The safetensors layout: u64 little-endian header length, JSON header {name: dtype, shape, data_offsets}, data."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype=DTYPES[h["dtype"]]).reshape(h["shape"]).copy())
    return out


def write_safetensors(path, tensors):
    names = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        raw = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def embedding_float64(t, dim):
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float64) * -(math.log(10000) / (half - 1)))
    args = t.to(torch.float64)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


config = json.load(open(os.path.join(here, "config.json")))
groups = config["group_norm_groups"]
port.Normalize = lambda ch: torch.nn.GroupNorm(num_groups=groups, num_channels=ch, eps=1e-6, affine=True)
model = port.Model(ch=config["ch"], out_ch=config["out_ch"], ch_mult=tuple(config["ch_mult"]),
                   num_res_blocks=config["num_res_blocks"], attn_resolutions=tuple(config["attn_resolutions"]),
                   dropout=config["dropout"], resamp_with_conv=config["resamp_with_conv"],
                   in_channels=config["in_channels"], resolution=config["resolution"]).eval()
model.load_state_dict(read_safetensors(os.path.join(here, "model.safetensors")), strict=True)
ref = read_safetensors(os.path.join(here, "reference.safetensors"))
x, t = ref["x"], ref["t"]

float32_embedding = port.get_timestep_embedding
with torch.no_grad():
    out = model(x, t)
    port.get_timestep_embedding = lambda ts, dim: float32_embedding(ts, dim).double()
    out_f32emb = model.double()(x.double(), t)
    port.get_timestep_embedding = embedding_float64
    out_f64emb = model(x.double(), t)
print("out reproduced: max |diff|", (out - ref["out"]).abs().max().item())
print("out_float64 reproduced: max |diff|", (out_f32emb - ref["out_float64"]).abs().max().item())
print("float64 embedding moves the float64 output by", (out_f64emb - out_f32emb).abs().max().item())
write_safetensors(os.path.join(here, "reference_float64.safetensors"), {"x": x.double(), "t": t, "out": out_f64emb})

"""Writes two tiny PyTorch state-dict files the way torch.save does, without torch:
legacy_state_dict.pth (the pre-1.6 stream format, that of pytorch-fid's Inception weights) and
zip_state_dict.pth (the zip format of torch >= 1.6). CPython's own pickle module writes the pickles
(protocol 2, as torch.save), with stand-ins for the torch globals it names, so the opcodes are the
ones a real file holds. Run: python3 make_pth_fixtures.py (any Python 3). The tests check the values below.

Contents (both files):
  conv.weight            float32 (2, 1, 1, 3) = [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]
  bn.running_mean        float32 (2,)  = storage S[1:3]  with S = [10, 11, 12, 13, 14]  -> [11, 12]
  bn.running_var         float32 (2,)  = storage S[3:5]  (same storage, offset 3)       -> [13, 14]
  bn.num_batches_tracked int64   ()    = 7
  fc.weight              float32 (2, 3), strides (1, 2) over storage [0, 1, 2, 3, 4, 5]
                         (a transposed view): fc.weight[i][j] = 2 j + i
  extra.double           float64 (2,)  = [1.5, -2.25]
"""
import collections, io, pickle, struct, sys, types, zipfile

torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
torch._utils = utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = utils


def _rebuild_tensor_v2(*args):
    raise RuntimeError("stand-in only")


_rebuild_tensor_v2.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2

for name in ("FloatStorage", "LongStorage", "DoubleStorage"):
    cls = type(name, (), {"__module__": "torch"})
    setattr(torch, name, cls)


class Storage:
    def __init__(self, key, cls, fmt, values):
        self.key, self.cls, self.fmt, self.values = key, cls, fmt, values

    def raw(self):
        return struct.pack("<%d%s" % (len(self.values), self.fmt), *self.values)


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride)

    def __reduce_ex__(self, proto):
        storage, offset, size, stride = self.args
        return (_rebuild_tensor_v2, (storage, offset, size, stride, False, collections.OrderedDict()))


def state_dict(keys):
    w = Storage(keys[0], torch.FloatStorage, "f", [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5])
    s = Storage(keys[1], torch.FloatStorage, "f", [10.0, 11.0, 12.0, 13.0, 14.0])
    n = Storage(keys[2], torch.LongStorage, "q", [7])
    t = Storage(keys[3], torch.FloatStorage, "f", [0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    d = Storage(keys[4], torch.DoubleStorage, "d", [1.5, -2.25])
    sd = collections.OrderedDict()
    sd["conv.weight"] = Tensor(w, 0, (2, 1, 1, 3), (3, 3, 3, 1))
    sd["bn.running_mean"] = Tensor(s, 1, (2,), (1,))
    sd["bn.running_var"] = Tensor(s, 3, (2,), (1,))
    sd["bn.num_batches_tracked"] = Tensor(n, 0, (), ())
    sd["fc.weight"] = Tensor(t, 0, (2, 3), (1, 2))
    sd["extra.double"] = Tensor(d, 0, (2,), (1,))
    # state_dict() sets _metadata on the OrderedDict; pickle writes it with BUILD.
    sd._metadata = collections.OrderedDict([("", {"version": 1}), ("bn", {"version": 2})])
    return sd, [w, s, n, t, d]


def dumps_with_storages(obj, legacy):
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=2)

    def persistent_id(o):
        if isinstance(o, Storage):
            pid = ("storage", o.cls, o.key, "cpu", len(o.values))
            return pid + (None,) if legacy else pid
        return None

    pickler.persistent_id = persistent_id
    pickler.dump(obj)
    return buf.getvalue()


def write_legacy(path):
    sd, storages = state_dict(["94", "100", "7", "23", "5"])
    out = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, out, protocol=2)
    pickle.dump(1001, out, protocol=2)
    pickle.dump(dict(protocol_version=1001, little_endian=True, type_sizes=dict(short=2, int=4, long=4)), out, protocol=2)
    out.write(dumps_with_storages(sd, legacy=True))
    keys = sorted(s.key for s in storages)
    pickle.dump(keys, out, protocol=2)
    by_key = {s.key: s for s in storages}
    for k in keys:
        s = by_key[k]
        out.write(struct.pack("<q", len(s.values)))
        out.write(s.raw())
    with open(path, "wb") as f:
        f.write(out.getvalue())


def write_zip(path):
    sd, storages = state_dict(["0", "1", "2", "3", "4"])
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", dumps_with_storages(sd, legacy=False))
        z.writestr("archive/byteorder", "little")
        for s in storages:
            z.writestr("archive/data/" + s.key, s.raw())
        z.writestr("archive/version", "3\n")


if __name__ == "__main__":
    write_legacy("legacy_state_dict.pth")
    write_zip("zip_state_dict.pth")

using System.IO.Compression;
using static TorchSharp.torch;

namespace Ddpm.IO;

/// <summary>
/// Reads a PyTorch state dict written by <c>torch.save(model.state_dict(), path)</c>, in either of its two formats:
/// the zip archive of torch 1.6 and later (<c>*/data.pkl</c> plus one file per storage under <c>*/data/</c>), or the
/// legacy stream of earlier versions (five pickles: magic number, protocol 1001, system info, the state dict, the list
/// of storage keys; then each storage as an int64 element count and its raw little-endian bytes), the format of
/// pytorch-fid's <c>pt_inception-2015-12-05-6726825d.pth</c>. TorchSharp.PyBridge reads only the zip format.
/// <para>
/// The pickles are read by <see cref="StateDictUnpickler"/>, which knows only the few globals a state dict needs
/// (OrderedDict, the tensor rebuild functions, the storage types) and runs no code from the file.
/// </para>
/// </summary>
public static class PthFile
{
    /// <summary>torch.save's legacy magic number.</summary>
    private static readonly System.Numerics.BigInteger LegacyMagic = System.Numerics.BigInteger.Parse("119547037146038801333356");

    private const long LegacyProtocol = 1001;

    /// <summary>The state dict's tensors in the file's order (CPU, contiguous; the caller disposes them).</summary>
    public static Dictionary<string, Tensor> Read(string path)
    {
        if (!File.Exists(path)) throw new DdpmException($"file not found: {path}");
        try
        {
            using var stream = File.OpenRead(path);
            Span<byte> head = stackalloc byte[4];
            int n = stream.Read(head);
            stream.Position = 0;
            if (IsZip(head[..n])) return ReadZip(stream);
            if (n >= 2 && head[0] == 0x80) return ReadLegacy(stream);
            throw new InvalidDataException("neither a zip archive nor a pickle stream (not a torch.save file)");
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or NotSupportedException or IOException)
        {
            throw new DdpmException($"{path}: cannot read PyTorch state dict: {e.Message}", e);
        }
    }

    private static bool IsZip(ReadOnlySpan<byte> head) => head.Length >= 4 && head[0] == 0x50 && head[1] == 0x4B && head[2] == 0x03 && head[3] == 0x04;

    private static Dictionary<string, Tensor> ReadZip(Stream stream)
    {
        using var zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        var pkl = zip.Entries.FirstOrDefault(e => e.FullName == "data.pkl" || e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal))
            ?? throw new InvalidDataException("zip archive without data.pkl");
        string prefix = pkl.FullName[..^"data.pkl".Length];
        object? root;
        using (var r = new BinaryReader(pkl.Open())) root = new StateDictUnpickler(r).Load();
        var storages = new Dictionary<string, byte[]>();
        return Materialise(root, storage =>
        {
            if (storages.TryGetValue(storage.Key, out var cached)) return cached;
            var entry = zip.GetEntry($"{prefix}data/{storage.Key}")
                ?? throw new InvalidDataException($"zip archive lacks the storage data/{storage.Key}");
            long bytes = storage.Count * storage.ElementSize;
            if (entry.Length < bytes) throw new InvalidDataException($"storage data/{storage.Key} holds {entry.Length} bytes, expected {bytes}");
            var data = new byte[bytes];
            using (var s = entry.Open()) s.ReadExactly(data);
            storages[storage.Key] = data;
            return data;
        });
    }

    private static Dictionary<string, Tensor> ReadLegacy(Stream stream)
    {
        var r = new BinaryReader(stream);
        if (new StateDictUnpickler(r).Load() is not System.Numerics.BigInteger magic || magic != LegacyMagic)
            throw new InvalidDataException("a pickle, but not a torch.save file (wrong magic number)");
        if (AsLong(new StateDictUnpickler(r).Load()) != LegacyProtocol)
            throw new InvalidDataException("unknown legacy torch.save protocol version");
        if (new StateDictUnpickler(r).Load() is PickleDict info && info.Items.TryGetValue("little_endian", out var le) && le is false)
            throw new NotSupportedException("big-endian torch.save files are not supported");
        var storageRefs = new Dictionary<string, StorageRef>();
        var root = new StateDictUnpickler(r, s => storageRefs.TryAdd(s.Key, s)).Load();
        if (new StateDictUnpickler(r).Load() is not List<object?> keys)
            throw new InvalidDataException("legacy torch.save file without its list of storages");
        // The storages follow in the order of that list: an int64 element count, then the raw bytes.
        var storages = new Dictionary<string, byte[]>();
        foreach (var k in keys)
        {
            string key = k as string ?? throw new InvalidDataException("storage key is not a string");
            if (!storageRefs.TryGetValue(key, out var sref)) throw new InvalidDataException($"storage {key} is listed but never used");
            long count = r.ReadInt64();
            if (count != sref.Count) throw new InvalidDataException($"storage {key} holds {count} elements, the pickle says {sref.Count}");
            storages[key] = r.ReadBytes(checked((int)(count * sref.ElementSize)));
            if (storages[key].Length != count * sref.ElementSize) throw new EndOfStreamException($"file ends inside storage {key}");
        }
        return Materialise(root, s => storages.TryGetValue(s.Key, out var d) ? d : throw new InvalidDataException($"storage {s.Key} missing"));
    }

    /// <summary>Turns the unpickled dict of tensor references into tensors, reading each storage's bytes with <paramref name="bytesOf"/>.</summary>
    private static Dictionary<string, Tensor> Materialise(object? root, Func<StorageRef, byte[]> bytesOf)
    {
        if (root is not PickleDict dict) throw new InvalidDataException("the file holds no state dict (its top-level object is not a dict)");
        var result = new Dictionary<string, Tensor>();
        try
        {
            foreach (var (k, v) in dict.Items)
            {
                if (k is not string key) throw new InvalidDataException("state-dict key is not a string");
                if (v is not TensorRef t) continue; // e.g. the extra state of a module; a state dict's tensors are what counts
                result[key] = t.ToTensor(bytesOf(t.Storage));
            }
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }

    internal static long AsLong(object? o) => o switch
    {
        long l => l,
        System.Numerics.BigInteger b when b >= long.MinValue && b <= long.MaxValue => (long)b,
        _ => throw new InvalidDataException($"expected an integer in the pickle, got {o?.GetType().Name ?? "None"}"),
    };
}

/// <summary>A storage named by a pickle's persistent id: its key, element type and element count.</summary>
internal sealed record StorageRef(string Key, ScalarType DType, long Count)
{
    public long ElementSize => DType switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        _ => 1,
    };
}

/// <summary>A tensor as <c>torch._utils._rebuild_tensor_v2</c> describes it: a view (offset, shape, strides) of a storage.</summary>
internal sealed record TensorRef(StorageRef Storage, long Offset, long[] Shape, long[] Stride)
{
    public Tensor ToTensor(byte[] bytes)
    {
        long needed = Offset + 1;
        for (int i = 0; i < Shape.Length; i++)
        {
            if (Shape[i] == 0) { needed = 0; break; }
            needed += (Shape[i] - 1) * Stride[i];
        }
        if (needed > Storage.Count) throw new InvalidDataException($"tensor view reaches element {needed} of a storage of {Storage.Count}");
        using var scope = NewDisposeScope();
        var flat = empty(new[] { Storage.Count }, Storage.DType);
        if (bytes.Length > 0) flat.bytes = bytes;
        return flat.as_strided(Shape, Stride, Offset).contiguous().clone().MoveToOuterDisposeScope();
    }
}

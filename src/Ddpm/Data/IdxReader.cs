using System.Buffers.Binary;
using System.IO.Compression;
using static TorchSharp.torch;

namespace Ddpm.Data;

/// <summary>
/// The contents of one IDX file: its element type code, its dimensions and its payload.
/// <see cref="Data"/> holds the payload bytes exactly as stored (big-endian for multi-byte types).
/// </summary>
public sealed record IdxFile(string Path, byte TypeCode, int[] Dims, byte[] Data)
{
    /// <summary>Product of the dimensions: the number of elements.</summary>
    public long ElementCount => Dims.Aggregate(1L, (a, d) => a * d);
}

/// <summary>
/// Reads and writes IDX files, the format of MNIST and its relatives
/// (http://yann.lecun.com/exdb/mnist/): magic 00 00 TT DD (TT element type, DD number of dimensions),
/// DD big-endian int32 sizes, then the elements in row-major order. A file starting with the gzip
/// magic 1f 8b is decompressed first, whatever its name; any other file is read raw.
/// </summary>
public static class Idx
{
    /// <summary>Type code of unsigned bytes, the only element type images and labels may use.</summary>
    public const byte UByte = 0x08;

    private static readonly Dictionary<byte, (string Name, int Size)> Types = new()
    {
        [0x08] = ("unsigned byte", 1),
        [0x09] = ("signed byte", 1),
        [0x0B] = ("int16", 2),
        [0x0C] = ("int32", 4),
        [0x0D] = ("float32", 4),
        [0x0E] = ("float64", 8),
    };

    /// <summary>
    /// Reads any IDX file with a known element type, checking the header and that the payload size equals the
    /// product of the dimensions times the element size. Every problem is a <see cref="DdpmException"/> naming the path.
    /// </summary>
    public static IdxFile Read(string path)
    {
        byte[] bytes = ReadDecompressed(path, out bool gzip);
        string what = gzip ? "decompressed " : "";
        if (bytes.Length < 4)
            throw new DdpmException($"{path}: not an IDX file: {what}size is {bytes.Length} bytes, too short for the 4-byte magic");
        if (bytes[0] != 0 || bytes[1] != 0)
            throw new DdpmException($"{path}: not an IDX file: {what}magic at byte offset 0 is {bytes[0]:x2} {bytes[1]:x2} {bytes[2]:x2} {bytes[3]:x2}, expected 00 00 followed by type and dimension count");
        byte type = bytes[2];
        if (!Types.TryGetValue(type, out var t))
            throw new DdpmException($"{path}: unknown IDX element type 0x{type:x2} at byte offset 2 (known: 0x08, 0x09, 0x0b, 0x0c, 0x0d, 0x0e)");
        int ndims = bytes[3];
        if (ndims == 0)
            throw new DdpmException($"{path}: IDX header declares 0 dimensions at byte offset 3");
        int headerSize = 4 + 4 * ndims;
        if (bytes.Length < headerSize)
            throw new DdpmException($"{path}: truncated IDX header: {ndims} dimensions need {headerSize} bytes, {what}file has {bytes.Length}");
        var dims = new int[ndims];
        long expected = t.Size;
        for (int i = 0; i < ndims; i++)
        {
            int offset = 4 + 4 * i;
            int d = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(offset, 4));
            if (d < 0)
                throw new DdpmException($"{path}: negative IDX dimension {d} at byte offset {offset}");
            dims[i] = d;
            expected = expected * d;
            if (expected > Array.MaxLength)
                throw new DdpmException($"{path}: IDX dimensions [{string.Join(" x ", dims.Take(i + 1))}...] describe more than {Array.MaxLength} bytes, too large to load");
        }
        long actual = bytes.LongLength - headerSize;
        if (actual != expected)
        {
            string kind = actual < expected ? "truncated" : "oversized";
            throw new DdpmException($"{path}: {kind} IDX file: dimensions {string.Join(" x ", dims)} of {t.Name} need {expected} payload bytes after the {headerSize}-byte header, {what}file has {actual}");
        }
        return new IdxFile(path, type, dims, bytes.AsSpan(headerSize).ToArray());
    }

    /// <summary>
    /// Reads a 3-D unsigned-byte IDX file (N, H, W) as a dataset of N grey images (N, 1, H, W), pixel b scaled to b / 127.5 - 1.
    /// Only the first <paramref name="maxCount"/> images are kept when it is given. When <paramref name="loadLabels"/> is true and a
    /// sibling labels file exists (see <see cref="FindLabelsFile"/>) holding exactly one label per image of the file, those labels
    /// are attached (cut to <paramref name="maxCount"/>); a sibling with another label count is ignored, a corrupt one is an error.
    /// </summary>
    public static ImageDataset ReadImages(string path, int? maxCount = null, bool loadLabels = true)
    {
        if (maxCount is < 1)
            throw new DdpmException($"max count {maxCount}: must be at least 1");
        var f = Read(path);
        RequireUByte(f, "images");
        if (f.Dims.Length != 3)
            throw new DdpmException($"{path}: IDX images must have 3 dimensions (count, height, width); this file has {f.Dims.Length} ({string.Join(" x ", f.Dims)})");
        int n = f.Dims[0], h = f.Dims[1], w = f.Dims[2];
        if (n == 0 || h == 0 || w == 0)
            throw new DdpmException($"{path}: IDX images file holds no pixels (dimensions {string.Join(" x ", f.Dims)})");
        int keep = maxCount is int m ? Math.Min(m, n) : n;

        long[]? labels = null;
        if (loadLabels && FindLabelsFile(path) is string labelsPath)
        {
            var all = ReadLabels(labelsPath);
            if (all.LongLength == n) labels = all.AsSpan(0, keep).ToArray();
        }

        int pixels = keep * h * w;
        var values = new float[pixels];
        var data = f.Data;
        for (int i = 0; i < pixels; i++) values[i] = Imaging.ImageIO.Dequantize(data[i]);
        var images = tensor(values, new long[] { keep, 1, h, w });
        return new ImageDataset(images, labels, path);
    }

    /// <summary>Reads a 1-D unsigned-byte IDX labels file.</summary>
    public static long[] ReadLabels(string path)
    {
        var f = Read(path);
        RequireUByte(f, "labels");
        if (f.Dims.Length != 1)
            throw new DdpmException($"{path}: IDX labels must have 1 dimension; this file has {f.Dims.Length} ({string.Join(" x ", f.Dims)})");
        var labels = new long[f.Data.Length];
        for (int i = 0; i < labels.Length; i++) labels[i] = f.Data[i];
        return labels;
    }

    /// <summary>
    /// The labels file that belongs to an images file, or null when none exists. In the file name, "images" becomes "labels"
    /// and "idx3" becomes "idx1" (images-idx3-ubyte -> labels-idx1-ubyte, train-images-idx3-ubyte -> train-labels-idx1-ubyte,
    /// t10k-images... -> t10k-labels...); the name is tried with and without ".gz".
    /// </summary>
    public static string? FindLabelsFile(string imagesPath)
    {
        string dir = Path.GetDirectoryName(Path.GetFullPath(imagesPath)) ?? ".";
        string name = Path.GetFileName(imagesPath);
        if (name.EndsWith(".gz", StringComparison.OrdinalIgnoreCase)) name = name[..^3];
        if (!name.Contains("images", StringComparison.Ordinal)) return null;
        string labelsName = name.Replace("images", "labels", StringComparison.Ordinal).Replace("idx3", "idx1", StringComparison.Ordinal);
        foreach (var candidate in new[] { labelsName + ".gz", labelsName })
        {
            string p = Path.Combine(dir, candidate);
            if (File.Exists(p)) return p;
        }
        return null;
    }

    /// <summary>Writes grey images as a 3-D unsigned-byte IDX file; <paramref name="pixels"/> holds count x height x width bytes, row-major.</summary>
    public static void WriteImages(string path, ReadOnlySpan<byte> pixels, int count, int height, int width, bool gzip)
    {
        if (count < 0 || height < 0 || width < 0 || (long)count * height * width != pixels.Length)
            throw new ArgumentException($"{pixels.Length} pixel bytes do not match {count} x {height} x {width}");
        Write(path, UByte, new[] { count, height, width }, pixels, gzip);
    }

    /// <summary>
    /// Writes a grey dataset or tensor (N, 1, H, W) in [-1, 1] as a 3-D unsigned-byte IDX file, quantised as PNG files are
    /// (see <see cref="Imaging.ImageIO.Quantize(Tensor)"/>), so images read from IDX survive a write-read round trip exactly.
    /// </summary>
    public static void WriteImages(string path, Tensor images, bool gzip)
    {
        if (images.dim() != 4 || images.shape[1] != 1)
            throw new ArgumentException($"images must be (N, 1, H, W); got shape [{string.Join(", ", images.shape)}]", nameof(images));
        using var q = Imaging.ImageIO.Quantize(images);
        var bytes = q.data<byte>().ToArray();
        WriteImages(path, bytes, (int)images.shape[0], (int)images.shape[2], (int)images.shape[3], gzip);
    }

    /// <summary>Writes labels (each 0..255) as a 1-D unsigned-byte IDX file.</summary>
    public static void WriteLabels(string path, IReadOnlyList<long> labels, bool gzip)
    {
        var bytes = new byte[labels.Count];
        for (int i = 0; i < bytes.Length; i++)
        {
            if (labels[i] is < 0 or > 255)
                throw new ArgumentException($"label {labels[i]} at index {i} does not fit in an unsigned byte", nameof(labels));
            bytes[i] = (byte)labels[i];
        }
        Write(path, UByte, new[] { bytes.Length }, bytes, gzip);
    }

    /// <summary>Writes an IDX file of any element type; the payload is taken as stored (big-endian for multi-byte types). The write is atomic.</summary>
    public static void Write(string path, byte typeCode, int[] dims, ReadOnlySpan<byte> payload, bool gzip)
    {
        if (!Types.TryGetValue(typeCode, out var t)) throw new ArgumentException($"unknown IDX type code 0x{typeCode:x2}", nameof(typeCode));
        if (dims.Length is < 1 or > 255) throw new ArgumentException("an IDX file has 1 to 255 dimensions", nameof(dims));
        long expected = dims.Aggregate((long)t.Size, (a, d) => a * d);
        if (expected != payload.Length) throw new ArgumentException($"payload is {payload.Length} bytes, dimensions need {expected}", nameof(payload));

        var header = new byte[4 + 4 * dims.Length];
        header[2] = typeCode;
        header[3] = (byte)dims.Length;
        for (int i = 0; i < dims.Length; i++) BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + 4 * i), dims[i]);

        var copy = payload.ToArray();
        IO.AtomicFile.Write(path, stream =>
        {
            if (gzip)
            {
                using var z = new GZipStream(stream, CompressionLevel.Optimal, leaveOpen: true);
                z.Write(header);
                z.Write(copy);
            }
            else
            {
                stream.Write(header);
                stream.Write(copy);
            }
        });
    }

    private static void RequireUByte(IdxFile f, string what)
    {
        if (f.TypeCode != UByte)
            throw new DdpmException($"{f.Path}: unsupported IDX element type 0x{f.TypeCode:x2} ({Types[f.TypeCode].Name}) for {what}; only unsigned bytes (0x08) are supported");
    }

    private static byte[] ReadDecompressed(string path, out bool gzip)
    {
        if (Directory.Exists(path))
            throw new DdpmException($"{path}: is a folder, expected an IDX file");
        if (!File.Exists(path))
            throw new DdpmException($"data not found: {path}");
        byte[] raw;
        try { raw = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DdpmException($"{path}: cannot read: {IO.AtomicFile.OneLine(e.Message)}", e);
        }
        gzip = raw.Length >= 2 && raw[0] == 0x1f && raw[1] == 0x8b;
        if (!gzip) return raw;
        try
        {
            using var input = new MemoryStream(raw, writable: false);
            using var z = new GZipStream(input, CompressionMode.Decompress);
            using var output = new MemoryStream();
            z.CopyTo(output);
            return output.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw new DdpmException($"{path}: corrupt gzip stream ({IO.AtomicFile.OneLine(e.Message)})", e);
        }
        catch (IOException e)
        {
            throw new DdpmException($"{path}: cannot decompress gzip stream ({IO.AtomicFile.OneLine(e.Message)})", e);
        }
    }
}

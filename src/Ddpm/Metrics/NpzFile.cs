using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;
using Ddpm.IO;

namespace Ddpm.Metrics;

/// <summary>A numeric array as stored in a .npy file: its shape and its elements in C (row-major) order.</summary>
public sealed record NpyArray(long[] Shape, double[] Data)
{
    /// <summary>Number of elements the shape describes (1 for a 0-d array).</summary>
    public long ElementCount => ElementCountOf(Shape);

    internal static long ElementCountOf(long[] shape)
    {
        long n = 1;
        foreach (long s in shape) n = checked(n * s);
        return n;
    }

    /// <summary>The shape as Python writes a tuple: <c>()</c>, <c>(3,)</c>, <c>(2, 2)</c>.</summary>
    public static string ShapeText(long[] shape) => shape.Length switch
    {
        0 => "()",
        1 => $"({shape[0].ToString(CultureInfo.InvariantCulture)},)",
        _ => "(" + string.Join(", ", shape.Select(s => s.ToString(CultureInfo.InvariantCulture))) + ")",
    };
}

/// <summary>
/// NumPy <c>.npy</c> arrays and <c>.npz</c> archives as <c>numpy.savez</c> writes them (pytorch-fid's statistics files).
/// Writing: format 1.0, float64 little-endian (<c>'&lt;f8'</c>), C order, header padded exactly as numpy pads it;
/// archives are stored uncompressed, one <c>NAME.npy</c> entry per array. Reading: format 1.0, 2.0 and 3.0 headers,
/// <c>'&lt;f8'</c> and <c>'&lt;f4'</c> (converted to double), any shape, both stored and deflated archives; Fortran-order
/// arrays are transposed into C order on reading, so <see cref="NpyArray.Data"/> is always row-major.
/// </summary>
public static class NpzFile
{
    private static readonly byte[] Magic = { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y' };
    private const int ArrayAlign = 64;
    private const int GrowthAxisMaxDigits = 21;

    /// <summary>Writes an .npz archive atomically (a failure leaves any previous file untouched).</summary>
    public static void Write(string path, IReadOnlyDictionary<string, NpyArray> arrays)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(arrays);
        foreach (var (name, array) in arrays) Validate(path, name, array);
        AtomicFile.Write(path, stream =>
        {
            using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
            foreach (var (name, array) in arrays)
            {
                var entry = zip.CreateEntry(name + ".npy", CompressionLevel.NoCompression);
                using var es = entry.Open();
                WriteNpy(es, array);
            }
        });
    }

    /// <summary>Reads every <c>.npy</c> entry of an .npz archive, keyed by name without the <c>.npy</c> suffix.</summary>
    public static Dictionary<string, NpyArray> Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new DdpmException($"{path}: file not found");
        var result = new Dictionary<string, NpyArray>(StringComparer.Ordinal);
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            ZipArchive zip;
            try { zip = new ZipArchive(fs, ZipArchiveMode.Read); }
            catch (InvalidDataException e)
            {
                throw new DdpmException($"{path}: not an .npz (zip) archive: {AtomicFile.OneLine(e.Message)}", e);
            }
            using (zip)
            {
                foreach (var entry in zip.Entries)
                {
                    if (!entry.FullName.EndsWith(".npy", StringComparison.Ordinal)) continue;
                    string name = entry.FullName[..^4];
                    try
                    {
                        using var es = entry.Open();
                        result[name] = ReadNpy(es, $"{path}: array '{name}'");
                    }
                    catch (InvalidDataException e)
                    {
                        throw new DdpmException($"{path}: array '{name}' is corrupt: {AtomicFile.OneLine(e.Message)}", e);
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DdpmException($"{path}: cannot read: {AtomicFile.OneLine(e.Message)}", e);
        }
        return result;
    }

    /// <summary>Writes one array in .npy format 1.0, float64 little-endian, C order.</summary>
    public static void WriteNpy(Stream stream, NpyArray array)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Validate("npy", "array", array);
        stream.Write(NpyHeader(array.Shape));
        var buffer = new byte[8 * 8192];
        var data = array.Data;
        for (int start = 0; start < data.Length; start += 8192)
        {
            int n = Math.Min(8192, data.Length - start);
            for (int i = 0; i < n; i++)
                BinaryPrimitives.WriteDoubleLittleEndian(buffer.AsSpan(8 * i, 8), data[start + i]);
            stream.Write(buffer, 0, 8 * n);
        }
    }

    /// <summary>
    /// The complete .npy 1.0 header block for a float64 C-order array: magic, version 1.0, little-endian uint16
    /// header length, the dict text, numpy's growth-axis spare spaces, padding spaces and a final newline, the whole
    /// block a multiple of 64 bytes.
    /// </summary>
    public static byte[] NpyHeader(long[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': " + NpyArray.ShapeText(shape) + ", }";
        if (shape.Length > 0)
            dict += new string(' ', Math.Max(0, GrowthAxisMaxDigits - shape[0].ToString(CultureInfo.InvariantCulture).Length));
        int hlen = dict.Length + 1; // + '\n'
        int prefix = Magic.Length + 2 + 2;
        int pad = ArrayAlign - (prefix + hlen) % ArrayAlign;
        int total = hlen + pad;
        if (total > ushort.MaxValue) throw new DdpmException($"npy: header for shape {NpyArray.ShapeText(shape)} too long for format 1.0");
        var bytes = new byte[prefix + total];
        Magic.CopyTo(bytes, 0);
        bytes[6] = 1;
        bytes[7] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8, 2), (ushort)total);
        Encoding.ASCII.GetBytes(dict, bytes.AsSpan(prefix));
        bytes.AsSpan(prefix + dict.Length, pad).Fill((byte)' ');
        bytes[^1] = (byte)'\n';
        return bytes;
    }

    /// <summary>Reads one .npy array; <paramref name="where"/> prefixes error messages (e.g. "file.npz: array 'mu'").</summary>
    public static NpyArray ReadNpy(Stream stream, string where)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var pre = new byte[8];
        if (!TryReadExactly(stream, pre)) throw new DdpmException($"{where}: truncated .npy header");
        if (!pre.AsSpan(0, 6).SequenceEqual(Magic)) throw new DdpmException($"{where}: not an .npy array (bad magic)");
        int major = pre[6];
        int lenSize = major switch
        {
            1 => 2,
            2 or 3 => 4,
            _ => throw new DdpmException($"{where}: unsupported .npy format version {pre[6]}.{pre[7]}"),
        };
        var lenBytes = new byte[lenSize];
        if (!TryReadExactly(stream, lenBytes)) throw new DdpmException($"{where}: truncated .npy header");
        long headerLen = lenSize == 2 ? BinaryPrimitives.ReadUInt16LittleEndian(lenBytes) : BinaryPrimitives.ReadUInt32LittleEndian(lenBytes);
        if (headerLen > 1 << 20) throw new DdpmException($"{where}: implausible .npy header length {headerLen}");
        var headerBytes = new byte[headerLen];
        if (!TryReadExactly(stream, headerBytes)) throw new DdpmException($"{where}: truncated .npy header");
        string header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(headerBytes);

        string descr = MatchOrThrow(header, @"'descr'\s*:\s*'([^']*)'", where, "descr");
        string fortranText = MatchOrThrow(header, @"'fortran_order'\s*:\s*(True|False)", where, "fortran_order");
        string shapeText = MatchOrThrow(header, @"'shape'\s*:\s*\(([^)]*)\)", where, "shape");
        bool fortran = fortranText == "True";
        long[] shape;
        try
        {
            shape = shapeText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(s => long.Parse(s.TrimEnd('L'), NumberStyles.None, CultureInfo.InvariantCulture)).ToArray();
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            throw new DdpmException($"{where}: bad shape ({shapeText}) in .npy header", e);
        }
        int itemSize = descr switch
        {
            "<f8" => 8,
            "<f4" => 4,
            _ => throw new DdpmException($"{where}: unsupported dtype '{descr}' (only '<f8' and '<f4' are read)"),
        };
        long count;
        try { count = NpyArray.ElementCountOf(shape); }
        catch (OverflowException e) { throw new DdpmException($"{where}: shape {NpyArray.ShapeText(shape)} too large", e); }
        if (count > Array.MaxLength / 8) throw new DdpmException($"{where}: shape {NpyArray.ShapeText(shape)} too large");

        var data = new double[count];
        var buffer = new byte[itemSize * 8192];
        for (long start = 0; start < count; start += 8192)
        {
            int n = (int)Math.Min(8192, count - start);
            if (!TryReadExactly(stream, buffer.AsSpan(0, itemSize * n)))
                throw new DdpmException($"{where}: truncated data (expected {count} elements of shape {NpyArray.ShapeText(shape)})");
            if (itemSize == 8)
                for (int i = 0; i < n; i++) data[start + i] = BinaryPrimitives.ReadDoubleLittleEndian(buffer.AsSpan(8 * i, 8));
            else
                for (int i = 0; i < n; i++) data[start + i] = BinaryPrimitives.ReadSingleLittleEndian(buffer.AsSpan(4 * i, 4));
        }
        if (stream.ReadByte() >= 0) throw new DdpmException($"{where}: extra bytes after the data of shape {NpyArray.ShapeText(shape)}");
        if (fortran && shape.Length > 1) data = FortranToC(data, shape);
        return new NpyArray(shape, data);
    }

    private static string MatchOrThrow(string header, string pattern, string where, string key)
    {
        var m = Regex.Match(header, pattern);
        if (!m.Success) throw new DdpmException($"{where}: .npy header lacks a valid '{key}' entry");
        return m.Groups[1].Value;
    }

    /// <summary>Reorders column-major data into row-major order for the same shape.</summary>
    private static double[] FortranToC(double[] f, long[] shape)
    {
        int nd = shape.Length;
        var fStride = new long[nd];
        long s = 1;
        for (int k = 0; k < nd; k++) { fStride[k] = s; s *= shape[k]; }
        var c = new double[f.Length];
        var idx = new long[nd];
        for (long i = 0; i < c.Length; i++)
        {
            long off = 0;
            for (int k = 0; k < nd; k++) off += idx[k] * fStride[k];
            c[i] = f[off];
            for (int k = nd - 1; k >= 0; k--)
            {
                if (++idx[k] < shape[k]) break;
                idx[k] = 0;
            }
        }
        return c;
    }

    private static bool TryReadExactly(Stream stream, Span<byte> buffer)
    {
        int got = 0;
        while (got < buffer.Length)
        {
            int n = stream.Read(buffer[got..]);
            if (n == 0) return false;
            got += n;
        }
        return true;
    }

    private static void Validate(string path, string name, NpyArray array)
    {
        if (string.IsNullOrEmpty(name) || name.Contains('/') || name.Contains('\\'))
            throw new DdpmException($"{path}: invalid array name '{name}'");
        if (array is null || array.Shape is null || array.Data is null)
            throw new DdpmException($"{path}: array '{name}' is null");
        if (array.Shape.Any(d => d < 0))
            throw new DdpmException($"{path}: array '{name}' has a negative dimension in shape {NpyArray.ShapeText(array.Shape)}");
        if (array.ElementCount != array.Data.Length)
            throw new DdpmException($"{path}: array '{name}' has {array.Data.Length} elements but shape {NpyArray.ShapeText(array.Shape)}");
    }
}

using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Ddpm.Metrics;

namespace Ddpm.Tests.Metrics;

public class NpzFileTests
{
    // Header text numpy (>= 1.23 format.py) writes for a (3,) float64 C-order array: the dict, 21 - len("3") = 20
    // growth spaces, then 40 padding spaces and '\n' so that 10 + 118 = 128 bytes. Header length 118 = 0x76.
    private const string Dict3 = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
    // (2, 2): 59-character dict, 20 growth spaces, 38 padding spaces, '\n': again 118 bytes.
    private const string Dict22 = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }";

    private static byte[] NumpyV1(string dict, int spaces, ushort headerLen, byte[] data)
    {
        var ms = new MemoryStream();
        ms.Write(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0 });
        ms.Write(new[] { (byte)(headerLen & 0xff), (byte)(headerLen >> 8) });
        ms.Write(Encoding.ASCII.GetBytes(dict + new string(' ', spaces) + "\n"));
        ms.Write(data);
        return ms.ToArray();
    }

    private static byte[] NumpyV2(string dict, byte[] data)
    {
        // Version 2.0: uint32 header length, 12-byte prefix; pad to 64.
        int hlen = dict.Length + 1;
        int pad = 64 - (12 + hlen) % 64;
        var ms = new MemoryStream();
        ms.Write(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 2, 0 });
        var len = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(len, (uint)(hlen + pad));
        ms.Write(len);
        ms.Write(Encoding.ASCII.GetBytes(dict + new string(' ', pad) + "\n"));
        ms.Write(data);
        return ms.ToArray();
    }

    private static byte[] F8(params double[] v)
    {
        var b = new byte[8 * v.Length];
        for (int i = 0; i < v.Length; i++) BinaryPrimitives.WriteDoubleLittleEndian(b.AsSpan(8 * i), v[i]);
        return b;
    }

    private static byte[] F4(params float[] v)
    {
        var b = new byte[4 * v.Length];
        for (int i = 0; i < v.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(4 * i), v[i]);
        return b;
    }

    private static string Zip(params (string Name, byte[] Bytes)[] entries)
    {
        var path = Path.Combine(TestUtil.TempDir(), "test.npz");
        using var fs = File.Create(path);
        using var zip = new ZipArchive(fs, ZipArchiveMode.Create);
        foreach (var (name, bytes) in entries)
        {
            using var s = zip.CreateEntry(name, CompressionLevel.Optimal).Open();
            s.Write(bytes);
        }
        return path;
    }

    [Fact]
    public void HeaderMatchesNumpyByteForByte()
    {
        var h = NpzFile.NpyHeader(new long[] { 3 });
        Assert.Equal(128, h.Length);
        Assert.Equal(new byte[] { 0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 0x01, 0x00, 0x76, 0x00 }, h[..10]);
        Assert.Equal(Dict3 + new string(' ', 60) + "\n", Encoding.ASCII.GetString(h, 10, 118));
        Assert.Equal(NumpyV1(Dict3, 60, 118, Array.Empty<byte>()), h);

        var h22 = NpzFile.NpyHeader(new long[] { 2, 2 });
        Assert.Equal(NumpyV1(Dict22, 58, 118, Array.Empty<byte>()), h22);

        // pytorch-fid's shapes: both blocks 128 bytes; (2048,) has 17 growth spaces + 43 padding.
        var hm = NpzFile.NpyHeader(new long[] { 2048 });
        Assert.Equal(NumpyV1("{'descr': '<f8', 'fortran_order': False, 'shape': (2048,), }", 57, 118, Array.Empty<byte>()), hm);
        var hs = NpzFile.NpyHeader(new long[] { 2048, 2048 });
        Assert.Equal(128, hs.Length);
        Assert.StartsWith("{'descr': '<f8', 'fortran_order': False, 'shape': (2048, 2048), }", Encoding.ASCII.GetString(hs, 10, 118));
        Assert.Equal((byte)'\n', hs[^1]);

        // 0-d: no growth spaces; still a multiple of 64.
        var h0 = NpzFile.NpyHeader(Array.Empty<long>());
        Assert.Equal(128, h0.Length); // 10 + 55-character dict + \n = 66 bytes, padded to 128
        Assert.Contains("'shape': (), }", Encoding.ASCII.GetString(h0));
    }

    [Fact]
    public void WrittenNpyIsHeaderThenLittleEndianDoubles()
    {
        var ms = new MemoryStream();
        NpzFile.WriteNpy(ms, new NpyArray(new long[] { 3 }, new[] { 1.0, -2.5, 1e300 }));
        Assert.Equal(NumpyV1(Dict3, 60, 118, F8(1.0, -2.5, 1e300)), ms.ToArray());
    }

    [Fact]
    public void WriteReadRoundTrip()
    {
        var path = Path.Combine(TestUtil.TempDir(), "a.npz");
        var arrays = new Dictionary<string, NpyArray>
        {
            ["mu"] = new(new long[] { 3 }, new[] { 0.1, double.MaxValue, -0.0 }),
            ["sigma"] = new(new long[] { 2, 3 }, new[] { 1.0, 2, 3, 4, 5, 6 }),
            ["scalar"] = new(Array.Empty<long>(), new[] { 42.0 }),
        };
        NpzFile.Write(path, arrays);
        var back = NpzFile.Read(path);
        Assert.Equal(3, back.Count);
        foreach (var (k, v) in arrays)
        {
            Assert.Equal(v.Shape, back[k].Shape);
            Assert.Equal(v.Data, back[k].Data);
        }
        using var zip = ZipFile.OpenRead(path);
        Assert.Equal(new[] { "mu.npy", "scalar.npy", "sigma.npy" }, zip.Entries.Select(e => e.FullName).Order().ToArray());
    }

    [Fact]
    public void ReadsArchiveOfNumpyBytes()
    {
        var path = Zip(("mu.npy", NumpyV1(Dict3, 60, 118, F8(1, 2, 3))),
                       ("sigma.npy", NumpyV1(Dict22, 58, 118, F8(1, 0.5, 0.5, 2))));
        // mu (3,) does not match sigma (2, 2): reading raw works, loading as statistics names the mismatch.
        var e = Assert.Throws<DdpmException>(() => FeatureStatistics.LoadNpz(path));
        Assert.Contains("'sigma'", e.Message);
        var raw = NpzFile.Read(path);
        Assert.Equal(new[] { 1.0, 2, 3 }, raw["mu"].Data);
        Assert.Equal(new[] { 1.0, 0.5, 0.5, 2 }, raw["sigma"].Data);
        Assert.Equal(new long[] { 2, 2 }, raw["sigma"].Shape);
    }

    [Fact]
    public void LoadNpzOfNumpyBytes()
    {
        var path = Zip(("mu.npy", NumpyV1("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 60, 118, F8(1, 2))),
                       ("sigma.npy", NumpyV1(Dict22, 58, 118, F8(1, 0.5, 0.5, 2))));
        var s = FeatureStatistics.LoadNpz(path);
        Assert.Equal(new[] { 1.0, 2 }, s.Mu);
        Assert.Equal(new double[,] { { 1, 0.5 }, { 0.5, 2 } }, s.Sigma);
    }

    [Fact]
    public void ReadsVersion2Float32AndFortranOrder()
    {
        var path = Zip(
            ("v2.npy", NumpyV2("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", F8(7, 8))),
            ("f4.npy", NumpyV1("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 60, 118, F4(0.5f, -1.25f, 3f))),
            // Column-major 2x3 [[1, 2, 3], [4, 5, 6]] is stored 1, 4, 2, 5, 3, 6.
            ("f.npy", NumpyV1("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", 59, 118, F8(1, 4, 2, 5, 3, 6))));
        var a = NpzFile.Read(path);
        Assert.Equal(new[] { 7.0, 8 }, a["v2"].Data);
        Assert.Equal(new[] { 0.5, -1.25, 3 }, a["f4"].Data);
        Assert.Equal(new long[] { 2, 3 }, a["f"].Shape);
        Assert.Equal(new[] { 1.0, 2, 3, 4, 5, 6 }, a["f"].Data);
    }

    [Fact]
    public void MissingFileIsReported()
    {
        var path = Path.Combine(TestUtil.TempDir(), "nope.npz");
        var e = Assert.Throws<DdpmException>(() => FeatureStatistics.LoadNpz(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("not found", e.Message);
    }

    [Fact]
    public void NotAZipIsReported()
    {
        var path = Path.Combine(TestUtil.TempDir(), "bad.npz");
        File.WriteAllText(path, "this is not a zip archive at all");
        var e = Assert.Throws<DdpmException>(() => NpzFile.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("zip", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    [Fact]
    public void MissingSigmaIsReported()
    {
        var path = Zip(("mu.npy", NumpyV1(Dict3, 60, 118, F8(1, 2, 3))));
        var e = Assert.Throws<DdpmException>(() => FeatureStatistics.LoadNpz(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("'sigma'", e.Message);
    }

    [Fact]
    public void TruncatedDataIsReported()
    {
        var path = Zip(("mu.npy", NumpyV1(Dict3, 60, 118, F8(1, 2))), ("sigma.npy", NumpyV1(Dict22, 58, 118, F8(1, 0, 0, 1))));
        var e = Assert.Throws<DdpmException>(() => FeatureStatistics.LoadNpz(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("'mu'", e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void TruncatedHeaderAndBadMagicAreReported()
    {
        var full = NumpyV1(Dict3, 60, 118, F8(1, 2, 3));
        var path = Zip(("mu.npy", full[..50]));
        Assert.Contains("truncated", Assert.Throws<DdpmException>(() => NpzFile.Read(path)).Message);
        var bad = (byte[])full.Clone();
        bad[1] = (byte)'X';
        var path2 = Zip(("mu.npy", bad));
        Assert.Contains("magic", Assert.Throws<DdpmException>(() => NpzFile.Read(path2)).Message);
    }

    [Fact]
    public void UnsupportedDescrIsReported()
    {
        var path = Zip(("mu.npy", NumpyV1("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", 60, 118, F8(1, 2, 3))));
        var e = Assert.Throws<DdpmException>(() => NpzFile.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("'mu'", e.Message);
        Assert.Contains("<i8", e.Message);
    }

    [Fact]
    public void ShapeMismatchOnWriteIsReported()
    {
        var path = Path.Combine(TestUtil.TempDir(), "x.npz");
        var e = Assert.Throws<DdpmException>(() => NpzFile.Write(path,
            new Dictionary<string, NpyArray> { ["mu"] = new(new long[] { 4 }, new double[3]) }));
        Assert.Contains("'mu'", e.Message);
        Assert.False(File.Exists(path));
    }
}

using System.IO.Compression;
using Ddpm.Data;
using static TorchSharp.torch;

namespace Ddpm.Tests.Data;

public class IdxTests
{
    private static byte[] KnownPixels(int n, int h, int w)
    {
        var b = new byte[n * h * w];
        for (int i = 0; i < b.Length; i++) b[i] = (byte)((i * 37 + 11) % 256);
        b[0] = 0; b[1] = 255; b[2] = 128; b[3] = 127;
        return b;
    }

    private static float[] Values(Tensor t) => t.contiguous().data<float>().ToArray();

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void WriteThenReadRoundTrips(bool gzip)
    {
        using var tmp = new TempDir();
        string suffix = gzip ? ".gz" : "";
        string images = tmp.File("images-idx3-ubyte" + suffix), labels = tmp.File("labels-idx1-ubyte" + suffix);
        var pixels = KnownPixels(3, 4, 5);
        Idx.WriteImages(images, pixels, 3, 4, 5, gzip);
        Idx.WriteLabels(labels, new long[] { 7, 0, 9 }, gzip);

        var head = File.ReadAllBytes(images).Take(4).ToArray();
        if (gzip) Assert.Equal(new byte[] { 0x1f, 0x8b }, head[..2]);
        else Assert.Equal(new byte[] { 0, 0, 8, 3 }, head);

        var raw = Idx.Read(images);
        Assert.Equal(new[] { 3, 4, 5 }, raw.Dims);
        Assert.Equal(0x08, raw.TypeCode);
        Assert.Equal(pixels, raw.Data);

        using var ds = Idx.ReadImages(images);
        Assert.Equal(new long[] { 3, 1, 4, 5 }, ds.Images.shape);
        Assert.Equal((3, 1, 4, 5), (ds.Count, ds.Channels, ds.Height, ds.Width));
        var v = Values(ds.Images);
        for (int i = 0; i < pixels.Length; i++) Assert.Equal((float)(pixels[i] / 127.5 - 1.0), v[i]);
        Assert.Equal(-1f, v[0]);
        Assert.Equal(1f, v[1]);
        Assert.Equal(new long[] { 7, 0, 9 }, ds.Labels);
        Assert.Equal(new long[] { 7, 0, 9 }, Idx.ReadLabels(labels));
    }

    [Fact]
    public void TensorWriterQuantisesBackToTheSameBytes()
    {
        using var tmp = new TempDir();
        var pixels = KnownPixels(2, 3, 3);
        Idx.WriteImages(tmp.File("a-images-idx3-ubyte"), pixels, 2, 3, 3, gzip: false);
        using var ds = Idx.ReadImages(tmp.File("a-images-idx3-ubyte"));
        Idx.WriteImages(tmp.File("b-images-idx3-ubyte"), ds.Images, gzip: true);
        Assert.Equal(pixels, Idx.Read(tmp.File("b-images-idx3-ubyte")).Data);
    }

    [Fact]
    public void SiblingLabelsFollowTheMnistNames()
    {
        using var tmp = new TempDir();
        File.WriteAllBytes(tmp.File("t10k-labels-idx1-ubyte"), Array.Empty<byte>());
        Assert.Equal(tmp.File("t10k-labels-idx1-ubyte"), Idx.FindLabelsFile(tmp.File("t10k-images-idx3-ubyte.gz")));
        File.WriteAllBytes(tmp.File("train-labels-idx1-ubyte.gz"), Array.Empty<byte>());
        Assert.Equal(tmp.File("train-labels-idx1-ubyte.gz"), Idx.FindLabelsFile(tmp.File("train-images-idx3-ubyte")));
        Assert.Null(Idx.FindLabelsFile(tmp.File("images-idx3-ubyte")));
        Assert.Null(Idx.FindLabelsFile(tmp.File("digits.idx")));
    }

    [Fact]
    public void MaxCountKeepsTheFirstImagesAndLabels()
    {
        using var tmp = new TempDir();
        var pixels = KnownPixels(4, 2, 2);
        Idx.WriteImages(tmp.File("images-idx3-ubyte"), pixels, 4, 2, 2, gzip: false);
        Idx.WriteLabels(tmp.File("labels-idx1-ubyte"), new long[] { 1, 2, 3, 4 }, gzip: false);
        using var ds = Idx.ReadImages(tmp.File("images-idx3-ubyte"), maxCount: 2);
        Assert.Equal(2, ds.Count);
        Assert.Equal(new long[] { 1, 2 }, ds.Labels);
        Assert.Equal((float)(pixels[7] / 127.5 - 1.0), Values(ds.Images)[7]);
    }

    [Fact]
    public void LabelsWithAnotherCountAreNotAttached()
    {
        using var tmp = new TempDir();
        Idx.WriteImages(tmp.File("images-idx3-ubyte"), KnownPixels(3, 2, 2), 3, 2, 2, gzip: false);
        Idx.WriteLabels(tmp.File("labels-idx1-ubyte"), new long[] { 1, 2 }, gzip: false);
        using var ds = Idx.ReadImages(tmp.File("images-idx3-ubyte"));
        Assert.Null(ds.Labels);
    }

    [Fact]
    public void BundledDigitsMatchBytesDecodedByHand()
    {
        string dir = RepoPaths.Mnist10k;
        string imagesPath = Path.Combine(dir, "images-idx3-ubyte.gz");
        byte[] raw;
        using (var z = new GZipStream(File.OpenRead(imagesPath), CompressionMode.Decompress))
        using (var ms = new MemoryStream()) { z.CopyTo(ms); raw = ms.ToArray(); }
        Assert.Equal(16 + 10000 * 28 * 28, raw.Length);
        byte[] rawLabels;
        using (var z = new GZipStream(File.OpenRead(Path.Combine(dir, "labels-idx1-ubyte.gz")), CompressionMode.Decompress))
        using (var ms = new MemoryStream()) { z.CopyTo(ms); rawLabels = ms.ToArray(); }

        using var ds = Idx.ReadImages(imagesPath);
        Assert.Equal(new long[] { 10000, 1, 28, 28 }, ds.Images.shape);
        Assert.Equal(ScalarType.Float32, ds.Images.dtype);
        Assert.True(ds.Images.min().item<float>() >= -1f);
        Assert.True(ds.Images.max().item<float>() <= 1f);
        Assert.Equal(-1f, ds.Images.min().item<float>());
        Assert.Equal(1f, ds.Images.max().item<float>());

        foreach (var (i, y, x) in new[] { (0, 14, 14), (0, 0, 0), (1, 10, 12), (4321, 16, 13), (9999, 12, 15) })
        {
            byte b = raw[16 + i * 784 + y * 28 + x];
            Assert.Equal(b / 127.5 - 1.0, ds.Images[i, 0, y, x].item<float>(), 6);
        }
        // The whole first and last images, as well.
        foreach (int i in new[] { 0, 9999 })
        {
            var v = Values(ds.Images[i]);
            for (int p = 0; p < 784; p++) Assert.Equal((float)(raw[16 + i * 784 + p] / 127.5 - 1.0), v[p]);
        }

        Assert.NotNull(ds.Labels);
        Assert.Equal(10000, ds.Labels!.Length);
        Assert.Equal(Enumerable.Range(0, 10).Select(d => (long)d), ds.Labels.Distinct().Order());
        for (int i = 0; i < 20; i++) Assert.Equal(rawLabels[8 + i], ds.Labels[i]);
    }

    private static string WriteRaw(TempDir tmp, string name, int n = 2, int h = 3, int w = 3)
    {
        string p = tmp.File(name);
        Idx.WriteImages(p, KnownPixels(n, h, w), n, h, w, gzip: false);
        return p;
    }

    private static DdpmException AssertOneLineError(Action a)
    {
        var e = Assert.Throws<DdpmException>(a);
        Assert.DoesNotContain('\n', e.Message);
        return e;
    }

    [Fact]
    public void WrongMagicNamesTheFile()
    {
        using var tmp = new TempDir();
        string p = tmp.File("notidx.bin");
        File.WriteAllBytes(p, new byte[] { 0x89, 0x50, 0x4e, 0x47, 1, 2, 3, 4, 5, 6, 7, 8 });
        var e = AssertOneLineError(() => Idx.ReadImages(p));
        Assert.Contains(p, e.Message);
        Assert.Contains("magic", e.Message);
    }

    [Fact]
    public void TruncatedFileReportsExpectedAndActualSizes()
    {
        using var tmp = new TempDir();
        string p = WriteRaw(tmp, "images-idx3-ubyte"); // 2 x 3 x 3 = 18 payload bytes
        var bytes = File.ReadAllBytes(p);
        File.WriteAllBytes(p, bytes[..^5]);
        var e = AssertOneLineError(() => Idx.ReadImages(p));
        Assert.Contains(p, e.Message);
        Assert.Contains("truncated", e.Message);
        Assert.Contains("18", e.Message);
        Assert.Contains("13", e.Message);
    }

    [Fact]
    public void TruncatedGzipFileIsAUserError()
    {
        using var tmp = new TempDir();
        string p = tmp.File("images-idx3-ubyte.gz");
        Idx.WriteImages(p, KnownPixels(50, 10, 10), 50, 10, 10, gzip: true);
        var bytes = File.ReadAllBytes(p);
        File.WriteAllBytes(p, bytes[..(bytes.Length / 2)]);
        var e = AssertOneLineError(() => Idx.ReadImages(p));
        Assert.Contains(p, e.Message);
    }

    [Fact]
    public void OversizedFileIsReported()
    {
        using var tmp = new TempDir();
        string p = WriteRaw(tmp, "images-idx3-ubyte");
        File.AppendAllText(p, "xyz");
        var e = AssertOneLineError(() => Idx.Read(p));
        Assert.Contains("oversized", e.Message);
        Assert.Contains("18", e.Message);
        Assert.Contains("21", e.Message);
    }

    [Fact]
    public void MissingFileIsAUserError()
    {
        using var tmp = new TempDir();
        var e = AssertOneLineError(() => Idx.ReadImages(tmp.File("nope-images-idx3-ubyte.gz")));
        Assert.Contains(tmp.File("nope-images-idx3-ubyte.gz"), e.Message);
    }

    [Fact]
    public void CorruptGzipStreamIsAUserErrorNotInvalidData()
    {
        using var tmp = new TempDir();
        string p = tmp.File("images-idx3-ubyte.gz");
        var junk = new byte[200];
        new Random(1).NextBytes(junk);
        junk[0] = 0x1f; junk[1] = 0x8b; junk[2] = 8; junk[3] = 0;
        File.WriteAllBytes(p, junk);
        var e = AssertOneLineError(() => Idx.ReadImages(p));
        Assert.Contains(p, e.Message);
        Assert.Contains("gzip", e.Message);
    }

    [Fact]
    public void OtherElementTypesAreUnsupportedForImages()
    {
        using var tmp = new TempDir();
        string p = tmp.File("images-idx3-ubyte");
        Idx.Write(p, 0x0D, new[] { 1, 2, 2 }, new byte[16], gzip: false);
        Assert.Equal(new[] { 1, 2, 2 }, Idx.Read(p).Dims);
        var e = AssertOneLineError(() => Idx.ReadImages(p));
        Assert.Contains("unsupported", e.Message);
        Assert.Contains("0x0d", e.Message);
    }

    [Fact]
    public void WrongDimensionCountIsReported()
    {
        using var tmp = new TempDir();
        string p = tmp.File("labels-idx1-ubyte");
        Idx.WriteLabels(p, new long[] { 1, 2, 3 }, gzip: false);
        var e = AssertOneLineError(() => Idx.ReadImages(p));
        Assert.Contains("3 dimensions", e.Message);
        var images = WriteRaw(tmp, "x-images-idx3-ubyte");
        var e2 = AssertOneLineError(() => Idx.ReadLabels(images));
        Assert.Contains("1 dimension", e2.Message);
    }
}

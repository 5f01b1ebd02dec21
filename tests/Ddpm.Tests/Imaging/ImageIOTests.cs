using Ddpm.Imaging;
using Ddpm.Tests.Data;
using SkiaSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Imaging;

public class ImageIOTests
{
    /// <summary>An image tensor whose values are exact levels b / 127.5 - 1 for bytes b given by a formula.</summary>
    private static Tensor Levels(int n, int c, int h, int w, Func<int, byte> byteAt)
    {
        var v = new float[n * c * h * w];
        for (int i = 0; i < v.Length; i++) v[i] = (float)(byteAt(i) / 127.5 - 1.0);
        return tensor(v, new long[] { n, c, h, w });
    }

    private static SKBitmap DecodeIndependently(string path)
    {
        using var codec = SKCodec.Create(path);
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var bmp = new SKBitmap(info);
        Assert.Equal(SKCodecResult.Success, codec.GetPixels(info, bmp.GetPixels()));
        return bmp;
    }

    [Fact]
    public void QuantisationFollowsTheDocumentedFormula()
    {
        Assert.Equal(0, ImageIO.Quantize(-1f));
        Assert.Equal(255, ImageIO.Quantize(1f));
        Assert.Equal(128, ImageIO.Quantize(0f));      // 127.5 rounds half to even
        Assert.Equal(0, ImageIO.Quantize(-3f));
        Assert.Equal(255, ImageIO.Quantize(7f));
        Assert.Equal(128, ImageIO.Quantize(float.NaN));
        for (int b = 0; b < 256; b++) Assert.Equal(b, ImageIO.Quantize(ImageIO.Dequantize((byte)b)));

        // The tensor version agrees with the scalar one on arbitrary values, outside the range included.
        var rng = new Random(5);
        var xs = Enumerable.Range(0, 2000).Select(_ => (float)(rng.NextDouble() * 2.4 - 1.2)).Append(float.NaN).ToArray();
        using var q = ImageIO.Quantize(tensor(xs));
        Assert.Equal(ScalarType.Byte, q.dtype);
        Assert.Equal(xs.Select(ImageIO.Quantize).ToArray(), q.data<byte>().ToArray());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void ExactLevelsSurviveSaveAndLoad(int channels)
    {
        using var tmp = new TempDir();
        var rng = new Random(channels);
        var bytes = new byte[channels * 7 * 9];
        rng.NextBytes(bytes);
        bytes[0] = 0; bytes[1] = 255;
        using var image = Levels(1, channels, 7, 9, i => bytes[i]).squeeze(0);
        string path = Path.Combine(tmp.Path, "new", "sub", "img.png");
        ImageIO.SavePng(image, path);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, File.ReadAllBytes(path)[..4]);
        Assert.Single(Directory.GetFiles(Path.GetDirectoryName(path)!)); // no temporary left behind

        using var back = ImageIO.LoadPng(path);
        Assert.Equal(new long[] { channels, 7, 9 }, back.shape);
        Assert.True(back.allclose(image, 0, 0));

        // The file holds the bytes, checked with SkiaSharp directly: pixel (x=2, y=3).
        using var bmp = DecodeIndependently(path);
        var px = bmp.GetPixel(2, 3);
        int p = 3 * 9 + 2, plane = 63;
        if (channels == 1) Assert.Equal((bytes[p], bytes[p], bytes[p]), (px.Red, px.Green, px.Blue));
        else Assert.Equal((bytes[p], bytes[plane + p], bytes[2 * plane + p]), (px.Red, px.Green, px.Blue));
    }

    [Fact]
    public void SavingOverAnExistingFileReplacesIt()
    {
        using var tmp = new TempDir();
        string path = tmp.File("a.png");
        File.WriteAllText(path, "old");
        using var img = full(new long[] { 1, 2, 2 }, 1f);
        ImageIO.SavePng(img, path);
        using var back = ImageIO.LoadPng(path);
        Assert.True(back.allclose(img, 0, 0));
        Assert.Single(Directory.GetFiles(tmp.Path));
    }

    [Fact]
    public void GridPlacesEachImageAtItsOffset()
    {
        using var tmp = new TempDir();
        const int n = 5, h = 3, w = 2, pad = 2, scale = 3;
        Func<int, byte> at = i => (byte)(i * 7 % 200 + 10); // never 255, the pad colour
        using var images = Levels(n, 1, h, w, at);
        string path = tmp.File("grid.png");
        ImageIO.SaveGrid(images, path, padding: pad, scale: scale);

        // ceil(sqrt 5) = 3 columns, 2 rows; cells are 6 x 9 pixels plus 2 of padding.
        using var bmp = DecodeIndependently(path);
        Assert.Equal(3 * (w * scale + pad) + pad, bmp.Width);  // 26
        Assert.Equal(2 * (h * scale + pad) + pad, bmp.Height); // 24
        var covered = new bool[bmp.Width, bmp.Height];
        for (int k = 0; k < n; k++)
        {
            int x0 = pad + (k % 3) * (w * scale + pad), y0 = pad + (k / 3) * (h * scale + pad);
            for (int y = 0; y < h * scale; y++)
                for (int x = 0; x < w * scale; x++)
                {
                    byte expected = at(k * h * w + (y / scale) * w + x / scale);
                    Assert.Equal(expected, bmp.GetPixel(x0 + x, y0 + y).Red);
                    covered[x0 + x, y0 + y] = true;
                }
        }
        for (int y = 0; y < bmp.Height; y++)
            for (int x = 0; x < bmp.Width; x++)
                if (!covered[x, y]) Assert.Equal(255, bmp.GetPixel(x, y).Red); // padding and the empty sixth cell
    }

    [Fact]
    public void GridColumnsAndPadValue()
    {
        using var images = Levels(5, 3, 4, 4, i => (byte)(i % 256));
        var (_, c, h2, w2) = ImageIO.MakeGrid(images, columns: 2, padding: 1);
        Assert.Equal((3, 3 * 5 + 1, 2 * 5 + 1), (c, h2, w2));
        var (_, _, h10, w10) = ImageIO.MakeGrid(images, columns: 10, padding: 0);
        Assert.Equal((4, 20), (h10, w10)); // columns capped at N: one row
        var (px, _, _, w1) = ImageIO.MakeGrid(images, columns: 1, padding: 3, padValue: 7);
        Assert.Equal(4 + 2 * 3, w1); // one column: padding, image, padding
        Assert.All(px[..(3 * w1 * 3)], b => Assert.Equal(7, b)); // top padding rows, every channel
        // Image 0's pixel (0, 0) in RGB at (3, 3): channel k holds byte k * 16.
        int o = (3 * w1 + 3) * 3;
        Assert.Equal(new byte[] { 0, 16, 32 }, px[o..(o + 3)]);
    }

    [Fact]
    public void SaveFolderWritesNumberedPngs()
    {
        using var tmp = new TempDir();
        using var images = Levels(3, 1, 4, 4, i => (byte)(i * 5));
        string folder = Path.Combine(tmp.Path, "samples");
        var paths = ImageIO.SaveFolder(images, folder);
        Assert.Equal(new[] { "sample_00000.png", "sample_00001.png", "sample_00002.png" }, paths.Select(Path.GetFileName));
        Assert.Equal(3, Directory.GetFiles(folder).Length);
        for (int i = 0; i < 3; i++)
        {
            using var back = ImageIO.LoadPng(paths[i]);
            Assert.True(back.allclose(images[i], 0, 0));
        }
        Assert.Equal("x_00010.png", Path.GetFileName(ImageIO.SaveFolder(images[TensorIndex.Slice(0, 1)], folder, "x", startIndex: 10)[0]));
    }

    [Fact]
    public void LoadingAMissingOrBrokenFileIsAUserError()
    {
        using var tmp = new TempDir();
        Assert.Contains("nope.png", Assert.Throws<DdpmException>(() => ImageIO.LoadPng(tmp.File("nope.png"))).Message);
        File.WriteAllBytes(tmp.File("bad.png"), new byte[] { 1, 2, 3 });
        Assert.Contains("bad.png", Assert.Throws<DdpmException>(() => ImageIO.LoadPng(tmp.File("bad.png"))).Message);
    }
}

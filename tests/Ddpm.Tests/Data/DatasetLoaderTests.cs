using Ddpm.Data;
using SkiaSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Data;

public class DatasetLoaderTests
{
    [Fact]
    public void MissingPathSaysDataNotFound()
    {
        using var tmp = new TempDir();
        string p = tmp.File("nothing-here");
        var e = Assert.Throws<DdpmException>(() => DatasetLoader.Load(p));
        Assert.Equal($"data not found: {p}", e.Message);
    }

    [Fact]
    public void BundledFolderLoadsItsIdxFile()
    {
        using var ds = DatasetLoader.Load(RepoPaths.Mnist10k, maxCount: 16);
        Assert.Equal(new long[] { 16, 1, 28, 28 }, ds.Images.shape);
        Assert.NotNull(ds.Labels);
        Assert.EndsWith("images-idx3-ubyte.gz", ds.Source);
    }

    [Fact]
    public void IdxResizeIsBilinearWithoutCornerAlignment()
    {
        using var tmp = new TempDir();
        // One 2 x 2 image [[0, 255], [255, 0]] -> 4 x 4. With align_corners = false, output i samples input (i + 0.5) / 2 - 0.5,
        // clamped at 0 and 1: row 0 = a, .75a + .25b, .25a + .75b, b on the first input row.
        string p = tmp.File("images-idx3-ubyte");
        Idx.WriteImages(p, new byte[] { 0, 255, 255, 0 }, 1, 2, 2, gzip: false);
        using var ds = DatasetLoader.Load(p, imageSize: 4);
        Assert.Equal(new long[] { 1, 1, 4, 4 }, ds.Images.shape);
        float[] row0 = Enumerable.Range(0, 4).Select(x => ds.Images[0, 0, 0, x].item<float>()).ToArray();
        Assert.Equal(new[] { -1f, -0.5f, 0.5f, 1f }, row0.Select(v => MathF.Round(v, 5)));
        // Row 1 mixes rows 0 and 1 with weights .75 / .25: at column 0, .75 * -1 + .25 * 1 = -0.5.
        Assert.Equal(-0.5f, ds.Images[0, 0, 1, 0].item<float>(), 5);
    }

    [Fact]
    public void ThreeChannelsReplicateGrey()
    {
        using var ds = DatasetLoader.Load(RepoPaths.Mnist10k, imageSize: 32, channels: 3, maxCount: 4);
        Assert.Equal(new long[] { 4, 3, 32, 32 }, ds.Images.shape);
        Assert.True(ds.Images[TensorIndex.Colon, 0].allclose(ds.Images[TensorIndex.Colon, 2], 0, 0));
        Assert.True(ds.Images[TensorIndex.Colon, 1].allclose(ds.Images[TensorIndex.Colon, 2], 0, 0));
        Assert.True(ds.Images.min().item<float>() >= -1f && ds.Images.max().item<float>() <= 1f);
        Assert.Equal(4, ds.Labels!.Length);
    }

    [Fact]
    public void ColourFolderDefaultsToItsShorterSideInRgb()
    {
        using var tmp = new TempDir();
        ImageFolderReaderTests.WriteImage(tmp.File("one.png"), 50, 40, (_, _) => SKColors.Green);
        using var ds = DatasetLoader.Load(tmp.Path);
        Assert.Equal(new long[] { 1, 3, 40, 40 }, ds.Images.shape); // the data's size: the shorter side, 40
        using var grey = DatasetLoader.Load(tmp.Path, imageSize: 8, channels: 1);
        Assert.Equal(new long[] { 1, 1, 8, 8 }, grey.Images.shape);
        // SKColors.Green is (0, 128, 0); resampling a solid image leaves it solid, and v / 127.5 - 1 maps the channels to
        // -1, 128 / 127.5 - 1 = 1/255 and -1. Grey is the BT.601 luma 0.587 * 128 = 75.136, kept unrounded:
        // 75.136 / 127.5 - 1 = -0.410698... (float32 arithmetic: 1e-6).
        var rgb = ds.Images[0].reshape(3, -1);
        var expected = new[] { -1.0, 128 / 127.5 - 1, -1.0 };
        for (int c = 0; c < 3; c++)
        {
            Assert.InRange(rgb[c].min().item<float>(), expected[c] - 1e-6, expected[c] + 1e-6);
            Assert.InRange(rgb[c].max().item<float>(), expected[c] - 1e-6, expected[c] + 1e-6);
        }
        double y = 0.587 * 128 / 127.5 - 1;
        Assert.InRange(grey.Images.min().item<float>(), y - 1e-6, y + 1e-6);
        Assert.InRange(grey.Images.max().item<float>(), y - 1e-6, y + 1e-6);
    }

    /// <summary>Writes a grey PNG (colour type 0, no alpha) whose pixel (x, y) is <paramref name="value"/>(x, y).</summary>
    internal static void WriteGreyPng(string path, int w, int h, Func<int, int, byte> value)
    {
        using var bmp = new SKBitmap(new SKImageInfo(w, h, SKColorType.Gray8, SKAlphaType.Opaque));
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                System.Runtime.InteropServices.Marshal.WriteByte(bmp.GetPixels() + y * bmp.RowBytes + x, value(x, y));
        using var data = bmp.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }

    [Fact]
    public void FolderOfGreyPngsLoadsAtTheirOwnSizeAndOneChannel()
    {
        // MNIST exported as PNGs: 28x28 grey. "default: the data's" means 1 x 28 x 28, as the IDX form of the same digits.
        using var tmp = new TempDir();
        WriteGreyPng(tmp.File("a.png"), 28, 28, (x, y) => (byte)(x * 9));
        WriteGreyPng(tmp.File("b.png"), 28, 28, (x, y) => (byte)(y * 9));
        using var ds = DatasetLoader.Load(tmp.Path);
        Assert.Equal(new long[] { 2, 1, 28, 28 }, ds.Images.shape);
        // At its own size nothing is resampled: pixel (x, y) of a.png is 9x, read as 9x / 127.5 - 1 (luma of r = g = b).
        for (int x = 0; x < 28; x++) Assert.Equal(x * 9 / 127.5 - 1, ds.Images[0, 0, 5, x].item<float>(), 5);

        // One colour image among them makes the data RGB; an explicit setting still wins.
        ImageFolderReaderTests.WriteImage(tmp.File("c.png"), 30, 28, (_, _) => SKColors.Red);
        using var mixed = DatasetLoader.Load(tmp.Path);
        Assert.Equal(new long[] { 3, 3, 28, 28 }, mixed.Images.shape);
        using var forced = DatasetLoader.Load(tmp.Path, imageSize: 16, channels: 1, maxCount: 2);
        Assert.Equal(new long[] { 2, 1, 16, 16 }, forced.Images.shape);
    }

    [Fact]
    public void BadOptionsAreUserErrors()
    {
        Assert.Contains("channels 2", Assert.Throws<DdpmException>(() => DatasetLoader.Load(RepoPaths.Mnist10k, channels: 2)).Message);
        Assert.Contains("image size 0", Assert.Throws<DdpmException>(() => DatasetLoader.Load(RepoPaths.Mnist10k, imageSize: 0)).Message);
    }
}

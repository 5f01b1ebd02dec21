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
    public void FolderDefaultsTo32PixelsRgb()
    {
        using var tmp = new TempDir();
        ImageFolderReaderTests.WriteImage(tmp.File("one.png"), 50, 40, (_, _) => SKColors.Green);
        using var ds = DatasetLoader.Load(tmp.Path);
        Assert.Equal(new long[] { 1, 3, 32, 32 }, ds.Images.shape);
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

    [Fact]
    public void BadOptionsAreUserErrors()
    {
        Assert.Contains("channels 2", Assert.Throws<DdpmException>(() => DatasetLoader.Load(RepoPaths.Mnist10k, channels: 2)).Message);
        Assert.Contains("image size 0", Assert.Throws<DdpmException>(() => DatasetLoader.Load(RepoPaths.Mnist10k, imageSize: 0)).Message);
    }
}

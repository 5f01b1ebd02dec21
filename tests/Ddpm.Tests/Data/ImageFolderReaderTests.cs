using Ddpm.Data;
using SkiaSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Data;

public class ImageFolderReaderTests
{
    internal static void WriteImage(string path, int w, int h, Func<int, int, SKColor> color, SKEncodedImageFormat format = SKEncodedImageFormat.Png)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var bmp = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                bmp.SetPixel(x, y, color(x, y));
        using var data = bmp.Encode(format, 100);
        File.WriteAllBytes(path, data.ToArray());
    }

    private static float[] Values(Tensor t) => t.contiguous().data<float>().ToArray();

    [Fact]
    public void ResizeAndCentreCropKeepsTheMiddleOfAWideImage()
    {
        using var tmp = new TempDir();
        // 40 x 20, left half black, right half white. Shorter side 20 -> 16, so the width becomes 32 and the centre crop
        // keeps source columns 10..29: output columns 0..7 black, 8..15 white.
        WriteImage(Path.Combine(tmp.Path, "nested", "deeper", "halves.png"), 40, 20, (x, _) => x < 20 ? SKColors.Black : SKColors.White);
        using var ds = ImageFolderReader.Read(tmp.Path, 16, 1);
        Assert.Equal(new long[] { 1, 1, 16, 16 }, ds.Images.shape);
        Assert.Null(ds.Labels);
        var v = Values(ds.Images);
        for (int y = 0; y < 16; y++)
        {
            for (int x = 0; x <= 4; x++) Assert.Equal(-1f, v[y * 16 + x], 5);
            for (int x = 11; x < 16; x++) Assert.Equal(1f, v[y * 16 + x], 5);
            Assert.True(v[y * 16 + 7] < v[y * 16 + 8]);
        }
        // Rows are all alike (the image is constant vertically).
        for (int x = 0; x < 16; x++) Assert.Equal(v[x], v[15 * 16 + x], 5);
    }

    [Fact]
    public void UpscalingATallImageCropsItsCentre()
    {
        using var tmp = new TempDir();
        // 4 x 8, top quarter red, the rest blue: the centre square (rows 2..5) is blue. As with resize-then-crop, the cubic
        // filter (support 2 source pixels) lets the red rows bleed into the top output rows: output row r samples source
        // y = 2 + (r + 0.5) / 3, which stays 2 pixels clear of red row 1's centre (1.5) for r >= 4.
        WriteImage(tmp.File("tall.png"), 4, 8, (_, y) => y < 2 ? SKColors.Red : SKColors.Blue);
        using var ds = ImageFolderReader.Read(tmp.Path, 12, 3);
        Assert.Equal(new long[] { 1, 3, 12, 12 }, ds.Images.shape);
        var v = Values(ds.Images);
        for (int p = 4 * 12; p < 144; p++)
        {
            Assert.Equal(-1f, v[p], 5);
            Assert.Equal(-1f, v[144 + p], 5);
            Assert.Equal(1f, v[288 + p], 5);
        }
        Assert.True(v[0] > v[11 * 12]); // the top row carries some red; the bottom row none
    }

    [Fact]
    public void GreyIsBt601LuminanceAndRgbKeepsChannels()
    {
        using var tmp = new TempDir();
        WriteImage(tmp.File("red.png"), 8, 8, (_, _) => new SKColor(255, 0, 0));
        using (var grey = ImageFolderReader.Read(tmp.Path, 8, 1))
        {
            float expected = (float)(0.299 * 255 / 127.5 - 1);
            foreach (var v in Values(grey.Images)) Assert.Equal(expected, v, 5);
        }
        using var rgb = ImageFolderReader.Read(tmp.Path, 8, 3);
        var c = Values(rgb.Images);
        for (int p = 0; p < 64; p++)
        {
            Assert.Equal(1f, c[p]);
            Assert.Equal(-1f, c[64 + p]);
            Assert.Equal(-1f, c[128 + p]);
        }
    }

    [Fact]
    public void AlphaIsCompositedOnWhite()
    {
        using var tmp = new TempDir();
        WriteImage(tmp.File("clear.png"), 4, 4, (x, _) => x < 2 ? new SKColor(0, 0, 0, 0) : new SKColor(0, 0, 0, 255));
        using var ds = ImageFolderReader.Read(tmp.Path, 4, 1);
        var v = Values(ds.Images);
        Assert.Equal(1f, v[0], 5);   // transparent -> white
        Assert.Equal(-1f, v[3], 5);  // opaque black stays black
    }

    [Fact]
    public void PngAndJpegFilesAreReadRecursivelyInPathOrder()
    {
        using var tmp = new TempDir();
        WriteImage(tmp.File("b.PNG"), 6, 6, (_, _) => new SKColor(200, 200, 200));
        WriteImage(Path.Combine(tmp.Path, "a", "x.jpeg"), 6, 6, (_, _) => new SKColor(40, 40, 40), SKEncodedImageFormat.Jpeg);
        WriteImage(Path.Combine(tmp.Path, "c", "d", "y.JPG"), 6, 6, (_, _) => new SKColor(120, 120, 120), SKEncodedImageFormat.Jpeg);
        File.WriteAllText(tmp.File("notes.txt"), "not an image");

        var files = ImageFolderReader.ListImages(tmp.Path).Select(p => Path.GetRelativePath(tmp.Path, p).Replace('\\', '/')).ToArray();
        Assert.Equal(new[] { "a/x.jpeg", "b.PNG", "c/d/y.JPG" }, files);

        using var ds = ImageFolderReader.Read(tmp.Path, 6, 1);
        Assert.Equal(3, ds.Count);
        float Mean(int i) => ds.Images[i].mean().item<float>();
        Assert.Equal(40 / 127.5 - 1, Mean(0), 2);   // JPEG: lossy, a level or so
        Assert.Equal(200 / 127.5 - 1, Mean(1), 5);
        Assert.Equal(120 / 127.5 - 1, Mean(2), 2);

        using var two = ImageFolderReader.Read(tmp.Path, 6, 1, maxCount: 2);
        Assert.Equal(2, two.Count);
    }

    [Fact]
    public void UndecodableFileIsNamed()
    {
        using var tmp = new TempDir();
        WriteImage(tmp.File("a.png"), 4, 4, (_, _) => SKColors.White);
        File.WriteAllBytes(tmp.File("broken.png"), new byte[] { 1, 2, 3, 4, 5, 6, 7, 8, 9 });
        var e = Assert.Throws<DdpmException>(() => ImageFolderReader.Read(tmp.Path, 8, 3));
        Assert.Contains("broken.png", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void EmptyOrMissingFolderIsAUserError()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp.File("readme.txt"), "x");
        var e = Assert.Throws<DdpmException>(() => ImageFolderReader.Read(tmp.Path, 8, 3));
        Assert.Contains("no images", e.Message);
        Assert.Contains(tmp.Path, e.Message);
        var e2 = Assert.Throws<DdpmException>(() => ImageFolderReader.Read(tmp.File("missing"), 8, 3));
        Assert.Contains(tmp.File("missing"), e2.Message);
        Assert.Throws<DdpmException>(() => ImageFolderReader.Read(tmp.Path, 8, 2));
    }
}

using Ddpm.Metrics.Inception;
using static TorchSharp.torch;

namespace Ddpm.Tests.Metrics.Inception;

/// <summary>pytorch-fid's preprocessing against pixels computed by hand.</summary>
public class FidPreprocessTests
{
    /// <summary>
    /// Half-pixel bilinear sampling (align_corners=False), by hand: output pixel d of n samples the input at
    /// s = (d + 0.5) in/n - 0.5, clamped below at 0; it mixes pixels floor(s) and floor(s) + 1 (the last pixel repeats).
    /// </summary>
    private static (int I0, int I1, double W1) Sample(int d, int inSize, int outSize)
    {
        double s = Math.Max(0, (d + 0.5) * inSize / outSize - 0.5);
        int i0 = (int)Math.Floor(s);
        return (i0, Math.Min(i0 + 1, inSize - 1), s - i0);
    }

    private static double Bilinear(double[,] img, int y, int x, int outSize)
    {
        var (y0, y1, wy) = Sample(y, img.GetLength(0), outSize);
        var (x0, x1, wx) = Sample(x, img.GetLength(1), outSize);
        double top = img[y0, x0] * (1 - wx) + img[y0, x1] * wx;
        double bottom = img[y1, x0] * (1 - wx) + img[y1, x1] * wx;
        return top * (1 - wy) + bottom * wy;
    }

    [Fact]
    public void GreyTwoByTwoResizesAsHalfPixelBilinearAndBecomesRgb()
    {
        byte[] px = { 0, 255, 100, 50 }; // rows (0, 255) and (100, 50)
        using var pixels = tensor(px, new long[] { 1, 1, 2, 2 });
        using var x = FidPreprocess.FromBytes(pixels);
        Assert.Equal(new long[] { 1, 3, 299, 299 }, x.shape);
        Assert.Equal(ScalarType.Float32, x.dtype);
        var img = new double[,] { { 0, 255 }, { 100, 50 } };
        // Corners take the corner pixels; 149 is the exact centre (s = 0.5); 74/75 straddle the clamp at 0; 223 is inside.
        foreach (var (yy, xx) in new[] { (0, 0), (0, 298), (298, 0), (298, 298), (149, 149), (0, 149), (149, 0), (74, 75), (75, 223), (223, 100) })
        {
            double expected = 2 * (Bilinear(img, yy, xx, 299) / 255) - 1;
            for (int c = 0; c < 3; c++)
                Assert.Equal(expected, x[0, c, yy, xx].item<float>(), 5);
        }
        // Spot values by hand: the centre is the mean of the four pixels; (0, 0) is pixel 0 -> -1.
        Assert.Equal(2 * (405 / 4.0 / 255) - 1, x[0, 0, 149, 149].item<float>(), 5);
        Assert.Equal(-1.0, x[0, 1, 0, 0].item<float>(), 6);
        Assert.Equal(2 * (50 / 255.0) - 1, x[0, 2, 298, 298].item<float>(), 5);
    }

    [Fact]
    public void RgbChannelsStayApartAndAnImageOf299IsOnlyRescaled()
    {
        using var g = new Generator(3, CPU);
        using var pixels = randint(0, 256, new long[] { 2, 3, 299, 299 }, generator: g).to_type(ScalarType.Byte);
        using var x = FidPreprocess.FromBytes(pixels);
        using var expected = pixels.to_type(ScalarType.Float32).div(255).mul(2).sub(1);
        Assert.True(x.allclose(expected, rtol: 0, atol: 1e-6));
    }

    [Fact]
    public void FloatImagesAreFirstRoundedToEightBits()
    {
        // 0.3 -> (0.3 + 1) * 127.5 = 165.75 -> 166 as a PNG stores it; a constant image stays constant through the resize.
        using var img = full(new long[] { 1, 3, 4, 4 }, 0.3f);
        using var x = FidPreprocess.FromImages(img);
        double expected = 2 * (166 / 255.0) - 1;
        Assert.True(x.allclose(full_like(x, expected), rtol: 0, atol: 1e-6));
        using var extremes = tensor(new float[] { -1f, 1f, -1.5f, 2f }, new long[] { 1, 1, 2, 2 });
        using var y = FidPreprocess.FromImages(extremes);
        Assert.Equal(-1.0, y[0, 0, 0, 0].item<float>(), 6);
        Assert.Equal(1.0, y[0, 0, 0, 298].item<float>(), 6);
        Assert.Equal(-1.0, y[0, 0, 298, 0].item<float>(), 6);  // clamped to 0
        Assert.Equal(1.0, y[0, 0, 298, 298].item<float>(), 6); // clamped to 255
    }

    [Fact]
    public void GreyFloatImagesMatchTheirQuantisedBytes()
    {
        using var g = new Generator(4, CPU);
        using var img = rand(new long[] { 2, 1, 5, 7 }, generator: g).mul(2).sub(1);
        using var x = FidPreprocess.FromImages(img);
        using var q = img.add(1).mul(127.5).round().to_type(ScalarType.Byte);
        using var y = FidPreprocess.FromBytes(q);
        Assert.True(x.allclose(y, rtol: 0, atol: 0));
    }

    [Fact]
    public void GreyGivesTheSameInputAsItsThreeChannelCopy()
    {
        using var g = new Generator(6, CPU);
        using var grey = rand(new long[] { 2, 1, 9, 6 }, generator: g).mul(2).sub(1);
        using var x = FidPreprocess.FromImages(grey);
        using var y = FidPreprocess.FromImages(grey.expand(-1, 3, -1, -1).contiguous());
        Assert.True(x.allclose(y, rtol: 0, atol: 0));
    }

    [Fact]
    public void WrongShapesAreRejected()
    {
        using var two = zeros(1, 2, 4, 4);
        Assert.Contains("C = 1 or 3", Assert.Throws<DdpmException>(() => FidPreprocess.FromImages(two)).Message);
        using var flat = zeros(3, 4, 4);
        Assert.Throws<DdpmException>(() => FidPreprocess.FromImages(flat));
        using var floats = zeros(new long[] { 1, 3, 4, 4 });
        Assert.Throws<ArgumentException>(() => FidPreprocess.FromBytes(floats));
    }
}

using Ddpm.Metrics;
using static TorchSharp.torch;

namespace Ddpm.Tests.Metrics;

public class FeatureStatisticsTests
{
    // Rows (1, 2), (3, 6), (5, 7): mean (3, 5); deviations (-2, -3), (0, 1), (2, 2);
    // N-1 covariance: xx = (4+0+4)/2 = 4, xy = (6+0+4)/2 = 5, yy = (9+1+4)/2 = 7.
    private static readonly double[,] Features = { { 1, 2 }, { 3, 6 }, { 5, 7 } };

    [Fact]
    public void MeanAndUnbiasedCovarianceFromArray()
    {
        var s = FeatureStatistics.FromFeatures(Features);
        Assert.Equal(2, s.Dim);
        Assert.Equal(3, s.Count);
        Assert.Equal(new[] { 3.0, 5.0 }, s.Mu);
        Assert.Equal(4.0, s.Sigma[0, 0], 12);
        Assert.Equal(5.0, s.Sigma[0, 1], 12);
        Assert.Equal(5.0, s.Sigma[1, 0], 12);
        Assert.Equal(7.0, s.Sigma[1, 1], 12);
    }

    [Fact]
    public void FloatTensorIsComputedInDouble()
    {
        using var t = tensor(new float[] { 1, 2, 3, 6, 5, 7 }, new long[] { 3, 2 });
        var s = FeatureStatistics.FromFeatures(t);
        Assert.Equal(new[] { 3.0, 5.0 }, s.Mu);
        Assert.Equal(7.0, s.Sigma[1, 1], 12);
    }

    [Fact]
    public void FewerThanTwoSamplesThrow()
    {
        var e = Assert.Throws<DdpmException>(() => FeatureStatistics.FromFeatures(new double[,] { { 1, 2 } }));
        Assert.Contains("at least 2", e.Message);
    }

    [Fact]
    public void NpzRoundTripKeepsStatistics()
    {
        var dir = TestUtil.TempDir();
        var path = Path.Combine(dir, "stats.npz");
        var s = FeatureStatistics.FromFeatures(Features);
        s.SaveNpz(path);
        var back = FeatureStatistics.LoadNpz(path);
        Assert.Equal(s.Mu, back.Mu);
        Assert.Equal(s.Sigma, back.Sigma);
        var arrays = NpzFile.Read(path);
        Assert.Equal(new long[] { 2 }, arrays["mu"].Shape);
        Assert.Equal(new long[] { 2, 2 }, arrays["sigma"].Shape);
        Assert.Empty(Directory.GetFiles(dir, "*.tmp"));
    }
}

using Ddpm.Metrics;

namespace Ddpm.Tests.Metrics;

public class FrechetDistanceTests
{
    private static FeatureStatistics Stats(double[] mu, double[,] sigma) => new(mu, sigma);

    [Fact]
    public void OneDimensionalClosedForm()
    {
        double m1 = 1.5, m2 = -0.25, s1 = 2.0, s2 = 0.7;
        double expected = (m1 - m2) * (m1 - m2) + s1 + s2 - 2 * Math.Sqrt(s1 * s2);
        double got = FrechetDistance.Compute(Stats(new[] { m1 }, new[,] { { s1 } }), Stats(new[] { m2 }, new[,] { { s2 } }));
        Assert.Equal(expected, got, 12);
    }

    [Fact]
    public void DiagonalCovariancesClosedForm()
    {
        double[] mu1 = { 0, 1, 2 }, mu2 = { 1, 1, -1 };
        double[] d1 = { 1, 4, 0.5 }, d2 = { 9, 1, 2 };
        double expected = 0;
        for (int i = 0; i < 3; i++)
            expected += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + d1[i] + d2[i] - 2 * Math.Sqrt(d1[i] * d2[i]);
        var s1 = new double[3, 3];
        var s2 = new double[3, 3];
        for (int i = 0; i < 3; i++) { s1[i, i] = d1[i]; s2[i, i] = d2[i]; }
        Assert.Equal(expected, FrechetDistance.Compute(Stats(mu1, s1), Stats(mu2, s2)), 10);
    }

    [Fact]
    public void TwoByTwoReferenceValue()
    {
        var a = Stats(new[] { 0.3, -0.2 }, new double[,] { { 4, 0 }, { 0, 1 } });
        var b = Stats(new[] { 0.3, -0.2 }, new double[,] { { 2, 1 }, { 1, 2 } });
        double expected = 9 - 2 * Math.Sqrt(10 + 4 * Math.Sqrt(3));
        Assert.Equal(0.77122045, expected, 7);
        Assert.Equal(expected, FrechetDistance.Compute(a, b), 10);
        Assert.Equal(expected, FrechetDistance.Compute(b, a), 10);
    }

    [Fact]
    public void MeanShiftOnlyGivesSquaredDistance()
    {
        var sigma = new double[,] { { 2, 0.5, 0.1 }, { 0.5, 1, 0.2 }, { 0.1, 0.2, 3 } };
        var a = Stats(new[] { 1.0, 2.0, 3.0 }, sigma);
        var b = Stats(new[] { 0.0, 4.0, 3.5 }, (double[,])sigma.Clone());
        Assert.Equal(1 + 4 + 0.25, FrechetDistance.Compute(a, b), 9);
    }

    [Fact]
    public void SymmetricAndZeroForIdentical()
    {
        var rng = new Random(5);
        var f1 = new double[40, 6];
        var f2 = new double[30, 6];
        for (int i = 0; i < 40; i++) for (int j = 0; j < 6; j++) f1[i, j] = rng.NextDouble() * (j + 1);
        for (int i = 0; i < 30; i++) for (int j = 0; j < 6; j++) f2[i, j] = rng.NextDouble() + 0.1 * j * rng.NextDouble();
        var a = FeatureStatistics.FromFeatures(f1);
        var b = FeatureStatistics.FromFeatures(f2);
        double ab = FrechetDistance.Compute(a, b), ba = FrechetDistance.Compute(b, a);
        Assert.True(ab > 0.1);
        Assert.Equal(ab, ba, 9);
        Assert.Equal(0.0, FrechetDistance.Compute(a, a), 9);
    }

    [Fact]
    public void SingularCovarianceIsFinite()
    {
        // Rank-deficient (N < D): the clamp keeps the result finite and non-negative.
        var rng = new Random(2);
        var f = new double[3, 5];
        for (int i = 0; i < 3; i++) for (int j = 0; j < 5; j++) f[i, j] = rng.NextDouble();
        var a = FeatureStatistics.FromFeatures(f);
        double v = FrechetDistance.Compute(a, a);
        Assert.True(double.IsFinite(v));
        Assert.InRange(v, -1e-6, 1e-6);
    }

    [Fact]
    public void MismatchedDimensionsThrow()
    {
        var a = Stats(new[] { 0.0 }, new double[,] { { 1 } });
        var b = Stats(new[] { 0.0, 0.0 }, new double[,] { { 1, 0 }, { 0, 1 } });
        var e = Assert.Throws<DdpmException>(() => FrechetDistance.Compute(a, b));
        Assert.Contains("dimension", e.Message);
    }
}

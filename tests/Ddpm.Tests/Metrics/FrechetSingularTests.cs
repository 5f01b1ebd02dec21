using Ddpm.Metrics;

namespace Ddpm.Tests.Metrics;

/// <summary>
/// The clamp of negative eigenvalues in the Frechet distance: it must absorb round-off of singular covariances (giving the
/// closed form), and must not hide a covariance that is not positive semi-definite.
/// </summary>
public class FrechetSingularTests
{
    private static double[,] Outer(double[] u)
    {
        var m = new double[u.Length, u.Length];
        for (int i = 0; i < u.Length; i++) for (int j = 0; j < u.Length; j++) m[i, j] = u[i] * u[j];
        return m;
    }

    [Fact]
    public void RankOneCovariancesGiveTheClosedForm()
    {
        // S1 = u u^T, S2 = v v^T: sqrt(S1) = u u^T / |u|, sqrt(S1) S2 sqrt(S1) = (u.v)^2 u u^T / |u|^2 has the single
        // non-zero eigenvalue (u.v)^2, so Tr sqrt(S1 S2) = |u.v| and FD = |mu1 - mu2|^2 + |u|^2 + |v|^2 - 2 |u.v|.
        // u = (1, 2, 2), v = (2, -1, 1): |u|^2 = 9, |v|^2 = 6, u.v = 2; mu differ by (1, 0, -1): FD = 2 + 9 + 6 - 4 = 13.
        double[] u = { 1, 2, 2 }, v = { 2, -1, 1 };
        var a = new FeatureStatistics(new[] { 1.0, 0.0, 0.0 }, Outer(u));
        var b = new FeatureStatistics(new[] { 0.0, 0.0, 1.0 }, Outer(v));
        // The zero eigenvalues come out as +-1e-15 round-off; a positive one enters through its square root (about 3e-8),
        // so the result is exact to about 1e-7, no better.
        Assert.Equal(13.0, FrechetDistance.Compute(a, b), 6);
        Assert.Equal(13.0, FrechetDistance.Compute(b, a), 6);
        // Orthogonal directions: Tr sqrt(S1 S2) = 0 and FD = 2 + 9 + |w|^2 with w = (2, -1, 0), |w|^2 = 5.
        var c = new FeatureStatistics(new[] { 0.0, 0.0, 1.0 }, Outer(new[] { 2.0, -1.0, 0.0 }));
        Assert.Equal(16.0, FrechetDistance.Compute(a, c), 6);
    }

    [Fact]
    public void TwoPointSetsHaveRankOneCovariancesFromTheirDifference()
    {
        // Two feature vectors x1, x2: mean (x1 + x2) / 2, covariance over N - 1 = 1: (x1 - x2)(x1 - x2)^T / 2,
        // i.e. u = (x1 - x2) / sqrt 2. Set A: (0,0,0), (2,4,4) -> u = (2,4,4)/sqrt2, |u|^2 = 18, mean (1,2,2).
        // Set B: (1,1,1), (3,-1,3) -> v = (2,-2,2)/sqrt2, |v|^2 = 6, mean (2,0,2). u.v = (4 - 8 + 8) / 2 = 2.
        // FD = |(1,2,2) - (2,0,2)|^2 + 18 + 6 - 2 * 2 = 5 + 20 = 25.
        var a = FeatureStatistics.FromFeatures(new double[,] { { 0, 0, 0 }, { 2, 4, 4 } });
        var b = FeatureStatistics.FromFeatures(new double[,] { { 1, 1, 1 }, { 3, -1, 3 } });
        Assert.Equal(25.0, FrechetDistance.Compute(a, b), 6);
    }

    [Fact]
    public void ACovarianceThatIsNotPositiveSemiDefiniteIsAnError()
    {
        // diag(4, -1) has the eigenvalue -1: not round-off. Clamping it to 0 would silently report the distance to
        // diag(4, 0) (here 0 + 5 + 4 - 2 * 2 = 5 against itself); a corrupt statistics file must fail instead.
        var bad = new FeatureStatistics(new[] { 0.0, 0.0 }, new double[,] { { 4, 0 }, { 0, -1 } });
        var good = new FeatureStatistics(new[] { 0.0, 0.0 }, new double[,] { { 4, 0 }, { 0, 0 } });
        foreach (var (x, y) in new[] { (bad, good), (good, bad) })
        {
            var e = Assert.Throws<DdpmException>(() => FrechetDistance.Compute(x, y));
            Assert.Contains("positive semi-definite", e.Message);
        }
        // Round-off-sized negative eigenvalues (here -1e-14 against 4) are clamped as before: diag(4, 0) vs itself is 0.
        var roundOff = new FeatureStatistics(new[] { 0.0, 0.0 }, new double[,] { { 4, 0 }, { 0, -1e-14 } });
        Assert.Equal(0.0, FrechetDistance.Compute(roundOff, good), 6);
    }
}

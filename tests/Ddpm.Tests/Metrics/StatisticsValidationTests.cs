using Ddpm.Metrics;

namespace Ddpm.Tests.Metrics;

/// <summary>
/// Statistics files that no data can produce are refused when loaded, naming the file and what is wrong: non-finite
/// numbers, a covariance that is not symmetric or not positive semi-definite. Files of real statistics still load.
/// </summary>
public class StatisticsValidationTests
{
    /// <summary>Writes mu and sigma as raw .npz arrays (bypassing <see cref="FeatureStatistics"/>'s own checks).</summary>
    internal static string WriteRaw(string dir, string name, double[] mu, double[,] sigma)
    {
        var path = Path.Combine(dir, name);
        int d = mu.Length;
        var flat = new double[d * d];
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) flat[i * d + j] = sigma[i, j];
        NpzFile.Write(path, new Dictionary<string, NpyArray>
        {
            ["mu"] = new NpyArray(new long[] { d }, mu),
            ["sigma"] = new NpyArray(new long[] { d, d }, flat),
        });
        return path;
    }

    internal static double[,] Identity(int d, double scale = 1)
    {
        var m = new double[d, d];
        for (int i = 0; i < d; i++) m[i, i] = scale;
        return m;
    }

    private static DdpmException Refused(string path)
    {
        var e = Assert.Throws<DdpmException>(() => FeatureStatistics.LoadNpz(path));
        Assert.StartsWith(path + ":", e.Message);
        Assert.DoesNotContain("\n", e.Message);
        return e;
    }

    [Fact]
    public void NaNOrInfinityInMuOrSigmaIsRefusedNamingTheEntry()
    {
        var dir = TestUtil.TempDir();
        Assert.Contains("mu[1] is NaN", Refused(WriteRaw(dir, "nan-mu.npz", new[] { 0.0, double.NaN }, Identity(2))).Message);
        var sigma = Identity(2);
        sigma[1, 0] = double.PositiveInfinity;
        Assert.Contains("sigma[1, 0] is", Refused(WriteRaw(dir, "inf-sigma.npz", new[] { 0.0, 0.0 }, sigma)).Message);
    }

    [Fact]
    public void ACovarianceThatIsNotPositiveSemiDefiniteIsRefusedWhenLoaded()
    {
        // -I has every eigenvalue -1: no set of vectors has it as covariance. Against I its Frechet distance would
        // clamp to that of two zero matrices; the file must be refused instead.
        var dir = TestUtil.TempDir();
        var e = Refused(WriteRaw(dir, "minus-identity.npz", new double[3], Identity(3, -1)));
        Assert.Contains("not positive semi-definite", e.Message);
        Assert.Contains("-1", e.Message);
        // [[1, 2], [2, 1]] is symmetric with eigenvalues 3 and -1.
        Assert.Contains("not positive semi-definite", Refused(WriteRaw(dir, "indefinite.npz", new double[2], new double[,] { { 1, 2 }, { 2, 1 } })).Message);
    }

    [Fact]
    public void AnAsymmetricCovarianceIsRefused()
    {
        var dir = TestUtil.TempDir();
        var e = Refused(WriteRaw(dir, "asym.npz", new double[2], new double[,] { { 1, 0.5 }, { 0, 1 } }));
        Assert.Contains("not symmetric", e.Message);
        Assert.Contains("sigma[0, 1]", e.Message);
    }

    [Fact]
    public void RealStatisticsAndRoundOffStillLoad()
    {
        // A singular covariance (two points span one direction) and a -1e-14 round-off eigenvalue against 4 are
        // covariances as far as float64 can tell; both load, and the distance is the closed form of FrechetSingularTests.
        var dir = TestUtil.TempDir();
        var a = FeatureStatistics.FromFeatures(new double[,] { { 0, 0, 0 }, { 2, 4, 4 } });
        var b = FeatureStatistics.FromFeatures(new double[,] { { 1, 1, 1 }, { 3, -1, 3 } });
        a.SaveNpz(Path.Combine(dir, "a.npz"));
        b.SaveNpz(Path.Combine(dir, "b.npz"));
        Assert.Equal(25.0, FrechetDistance.Compute(FeatureStatistics.LoadNpz(Path.Combine(dir, "a.npz")), FeatureStatistics.LoadNpz(Path.Combine(dir, "b.npz"))), 6);
        var roundOff = FeatureStatistics.LoadNpz(WriteRaw(dir, "roundoff.npz", new double[2], new double[,] { { 4, 0 }, { 0, -1e-14 } }));
        Assert.Equal(-1e-14, roundOff.Sigma[1, 1]);
    }
}

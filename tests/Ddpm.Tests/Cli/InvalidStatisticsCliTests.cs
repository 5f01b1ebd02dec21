using System.Text.Json;
using Ddpm.Metrics;
using Ddpm.Metrics.Classifier;
using Ddpm.Tests.Metrics;

namespace Ddpm.Tests.Cli;

/// <summary>Files of statistics for the CLI tests: diagonal covariances whose distances are closed forms.</summary>
internal static class StatisticsValidationTestsFiles
{
    /// <summary>mu = 0, sigma = <paramref name="variance"/> I in <paramref name="dims"/> dimensions.</summary>
    public static string Diagonal(string dir, string name, int dims, double variance)
    {
        var path = Path.Combine(dir, name);
        new FeatureStatistics(new double[dims], StatisticsValidationTests.Identity(dims, variance)).SaveNpz(path);
        return path;
    }
}

/// <summary>
/// <c>ddpm distance</c> and <c>ddpm fid</c> refuse statistics no data can produce and statistics of different widths
/// with a one-line error and exit 1 (they printed NaN, or 0.0000 for -I against I, and exited 0).
/// </summary>
public class InvalidStatisticsCliTests
{
    private static void AssertRefused((int Code, string Out, string Err) r, params string[] named)
    {
        Assert.True(r.Code == 1, r.Out + r.Err);
        Assert.StartsWith("error: ", r.Err);
        Assert.Single(r.Err.Trim().Split('\n'));
        foreach (var n in named) Assert.Contains(n, r.Err);
        Assert.DoesNotContain("FD in", r.Out);
        Assert.DoesNotContain("FID (", r.Out);
    }

    [Fact]
    public void NaNStatisticsAreRefusedNamingTheFile()
    {
        var dir = TestUtil.TempDir();
        var good = StatisticsValidationTestsFiles.Diagonal(dir, "good.npz", 3, 1);
        var nan = StatisticsValidationTests.WriteRaw(dir, "nan.npz", new[] { 0.0, double.NaN, 0.0 }, StatisticsValidationTests.Identity(3));
        var json = Path.Combine(dir, "d.json");
        AssertRefused(TestUtil.Cli("distance", nan, good, "--no-floor", "-o", json, "--no-progress"), nan, "mu[1]");
        AssertRefused(TestUtil.Cli("fid", good, nan, "--inception-weights", Path.Combine(dir, "none.pth"), "-o", json, "--no-progress"), nan);
        Assert.False(File.Exists(json));
    }

    [Fact]
    public void MinusIdentityAgainstIdentityIsRefusedNotZero()
    {
        var dir = TestUtil.TempDir();
        var identity = StatisticsValidationTestsFiles.Diagonal(dir, "identity.npz", 3, 1);
        var minus = StatisticsValidationTests.WriteRaw(dir, "minus.npz", new double[3], StatisticsValidationTests.Identity(3, -1));
        AssertRefused(TestUtil.Cli("fid", minus, identity, "--inception-weights", Path.Combine(dir, "none.pth"), "-o", Path.Combine(dir, "f.json"), "--no-progress"),
            minus, "positive semi-definite");
        AssertRefused(TestUtil.Cli("distance", identity, minus, "--no-floor", "-o", Path.Combine(dir, "d.json"), "--no-progress"), minus);
    }

    [Fact]
    public void StatisticsOfDifferentWidthsAreRefusedNamingBoth()
    {
        var dir = TestUtil.TempDir();
        var three = StatisticsValidationTestsFiles.Diagonal(dir, "three.npz", 3, 1);
        var four = StatisticsValidationTestsFiles.Diagonal(dir, "four.npz", 4, 1);
        AssertRefused(TestUtil.Cli("distance", three, four, "--no-floor", "-o", Path.Combine(dir, "d.json"), "--no-progress"),
            three, four, "3-dimensional", "4-dimensional");
    }

    [Fact]
    public void FourDimensionalStatisticsAreNotLabelledAsClassifierFeatures()
    {
        var dir = TestUtil.TempDir();
        var a = StatisticsValidationTestsFiles.Diagonal(dir, "a.npz", 4, 1);
        var b = StatisticsValidationTestsFiles.Diagonal(dir, "b.npz", 4, 9);
        var json = Path.Combine(dir, "d.json");
        var (code, output, err) = TestUtil.Cli("distance", a, b, "--no-floor", "-o", json, "--no-progress");
        Assert.True(code == 0, output + err);
        string classifier = ClassifierFeatureExtractor.NameFor(ClassifierStore.LoadInfo("mnist"));
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        Assert.Equal($"unknown 4-d features (not {classifier}, which gives 128)", doc.RootElement.GetProperty("extractor").GetString());
        Assert.Equal(4 * (3.0 - 1.0) * (3.0 - 1.0), doc.RootElement.GetProperty("distance").GetDouble(), 9);
        Assert.DoesNotContain($"FD in {classifier} features", output);
        Assert.Contains("FD in unknown 4-d features", output);
    }
}

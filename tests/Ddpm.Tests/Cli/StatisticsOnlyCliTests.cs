using System.Text.Json;
using Ddpm.Metrics;
using Ddpm.Metrics.Classifier;

namespace Ddpm.Tests.Cli;

/// <summary>
/// <c>ddpm fid</c> and <c>ddpm distance</c> between two <c>.npz</c> statistics need no network: they succeed with the
/// weights path pointing at nothing, and give the Frechet distance of the files' mu and sigma. A missing or malformed
/// input is reported as such, before any weights are looked for.
/// </summary>
public class StatisticsOnlyCliTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => TestUtil.Cli(args);

    /// <summary>
    /// Two statistics with diagonal covariances: Tr sqrt(S1 S2) = sum sqrt(s1 s2), so the Frechet distance is
    /// |mu1 - mu2|^2 + sum (sqrt s1 - sqrt s2)^2 = (1 + 4 + 4) + ((2 - 1)^2 + (3 - 1)^2 + (1 - 4)^2) = 9 + 14 = 23.
    /// </summary>
    private static (string A, string B) WriteDiagonalPair(string dir)
    {
        var a = Path.Combine(dir, "a.npz");
        var b = Path.Combine(dir, "b.npz");
        new FeatureStatistics(new[] { 1.0, 2.0, 3.0 }, new double[,] { { 4, 0, 0 }, { 0, 9, 0 }, { 0, 0, 1 } }).SaveNpz(a);
        new FeatureStatistics(new[] { 0.0, 0.0, 1.0 }, new double[,] { { 1, 0, 0 }, { 0, 1, 0 }, { 0, 0, 16 } }).SaveNpz(b);
        return (a, b);
    }

    [Fact]
    public void FidOfTwoStatisticsFilesNeedsNoWeightsAndIsTheClosedForm()
    {
        var dir = TestUtil.TempDir();
        var (a, b) = WriteDiagonalPair(dir);
        var noWeights = Path.Combine(dir, "no-such-inception.pth");
        var json = Path.Combine(dir, "fid.json");
        var (code, output, err) = Run("fid", a, b, "--inception-weights", noWeights, "-o", json, "--no-progress");
        Assert.True(code == 0, err + output);
        Assert.False(File.Exists(noWeights));
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var r = doc.RootElement;
        Assert.Equal(23.0, r.GetProperty("distance").GetDouble(), 10);
        Assert.Equal(3, r.GetProperty("dims").GetInt32());
        // 3-d statistics cannot be pool3 features (--dims, 2048 by default): the report says only what they are.
        Assert.Equal("unknown 3-d features (not inception-v3-fid/pool3, which gives 2048)", r.GetProperty("extractor").GetString());
        Assert.Equal("statistics", r.GetProperty("a").GetProperty("kind").GetString());
        Assert.Contains("FID (unknown 3-d features (not inception-v3-fid/pool3, which gives 2048), 3 dims): 23.0000", output);

        // --dims names another tap, still without a network: maxpool1 for 64.
        (code, output, err) = Run("fid", b, a, "--dims", "64", "--inception-weights", noWeights, "-o", json, "--no-progress");
        Assert.True(code == 0, err + output);
        using var swapped = JsonDocument.Parse(File.ReadAllText(json));
        Assert.Equal(23.0, swapped.RootElement.GetProperty("distance").GetDouble(), 10);
        Assert.Equal("unknown 3-d features (not inception-v3-fid/maxpool1, which gives 64)", swapped.RootElement.GetProperty("extractor").GetString());

        // Statistics of the width --dims names are labelled with that layer, still without a network.
        var a64 = StatisticsValidationTestsFiles.Diagonal(dir, "a64.npz", 64, 1.0);
        var b64 = StatisticsValidationTestsFiles.Diagonal(dir, "b64.npz", 64, 4.0);
        (code, output, err) = Run("fid", a64, b64, "--dims", "64", "--inception-weights", noWeights, "-o", json, "--no-progress");
        Assert.True(code == 0, err + output);
        using var layer = JsonDocument.Parse(File.ReadAllText(json));
        Assert.Equal("inception-v3-fid/maxpool1", layer.RootElement.GetProperty("extractor").GetString());
        Assert.Equal(64.0, layer.RootElement.GetProperty("distance").GetDouble(), 9); // 64 (sqrt 4 - sqrt 1)^2
    }

    [Fact]
    public void DistanceOfTwoStatisticsFilesReadsOnlyTheClassifiersMetadata()
    {
        // A classifier file whose weights are not weights at all: loading it fails (its SHA-256 does not match its
        // metadata), so the distance between two statistics files succeeds only because it never loads the network.
        var dir = TestUtil.TempDir();
        var (a, b) = WriteDiagonalPair(dir);
        var clf = Path.Combine(dir, "broken.safetensors");
        File.WriteAllText(clf, "not weights");
        File.Copy(Path.Combine(TestUtil.RepoRoot(), "assets", "classifiers", "mnist.json"), ClassifierStore.InfoPath(clf));
        Assert.Throws<DdpmException>(() => ClassifierFeatureExtractor.Load(clf));

        var json = Path.Combine(dir, "d.json");
        var (code, output, err) = Run("distance", a, b, "--classifier", clf, "--no-floor", "-o", json, "--no-progress");
        Assert.True(code == 0, err + output);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        Assert.Equal(23.0, doc.RootElement.GetProperty("distance").GetDouble(), 10);
        // 3-d statistics are not the classifier's 128-d features: the label says what they are, from their width.
        Assert.Equal("unknown 3-d features (not classifier/" + ClassifierStore.LoadInfo("mnist").Dataset + ", which gives 128)",
            doc.RootElement.GetProperty("extractor").GetString());
        var a128 = StatisticsValidationTestsFiles.Diagonal(dir, "a128.npz", 128, 1.0);
        var b128 = StatisticsValidationTestsFiles.Diagonal(dir, "b128.npz", 128, 1.0);
        (code, output, err) = Run("distance", a128, b128, "--classifier", clf, "--no-floor", "-o", json, "--no-progress");
        Assert.True(code == 0, err + output);
        using (var same = JsonDocument.Parse(File.ReadAllText(json)))
            Assert.Equal("classifier/" + ClassifierStore.LoadInfo("mnist").Dataset, same.RootElement.GetProperty("extractor").GetString());

        // With images on one side the network is needed, and the broken weights are reported.
        var real = Path.Combine(dir, "real-images-idx3-ubyte");
        using (var data = TestUtil.TinyData(count: 4, size: 8, seed: 2))
            Ddpm.Data.Idx.WriteImages(real, data.Images, gzip: false);
        (code, _, err) = Run("distance", real, b, "--classifier", clf, "--no-floor", "-o", json, "--no-progress");
        Assert.Equal(1, code);
        Assert.Single(err.Trim().Split('\n'));
        Assert.Contains("broken.safetensors", err);
    }

    [Fact]
    public void AMissingOrMalformedInputIsReportedBeforeTheWeights()
    {
        var dir = TestUtil.TempDir();
        var (a, _) = WriteDiagonalPair(dir);
        var noWeights = Path.Combine(dir, "no-such-inception.pth");
        var missing = Path.Combine(dir, "missing.npz");
        var junk = Path.Combine(dir, "junk.npz");
        File.WriteAllText(junk, "not a zip archive");
        var noFolder = Path.Combine(dir, "no-such-folder");

        foreach (var (first, second, named) in new[] { (a, missing, missing), (missing, a, missing), (a, junk, junk), (noFolder, a, noFolder) })
        {
            var (code, output, err) = Run("fid", first, second, "--inception-weights", noWeights, "--no-progress");
            Assert.True(code == 1, $"fid {first} {second}: {output}{err}");
            Assert.Single(err.Trim().Split('\n'));
            Assert.StartsWith("error: ", err);
            Assert.Contains(named, err);
            Assert.DoesNotContain("no-such-inception", err);
        }

        var (c, _, e) = Run("distance", a, missing, "--no-progress");
        Assert.Equal(1, c);
        Assert.Single(e.Trim().Split('\n'));
        Assert.Contains(missing, e);
    }
}

using Ddpm.Data;
using Ddpm.Metrics;
using Ddpm.Tests.Sampling;

namespace Ddpm.Tests.Cli;

/// <summary>
/// Sharded sampling and statistics (issue 14): the shards of an array job, run separately, give exactly what one process
/// gives: the same PNG files under the same names, and statistics equal to float64 rounding.
/// </summary>
public class ShardingCliTests : IClassFixture<TinyRun>
{
    private readonly TinyRun _run;
    public ShardingCliTests(TinyRun run) => _run = run;

    private static (int Code, string Out, string Err) Run(params string[] args) => TestUtil.Cli(args);

    private static readonly string[] Fast = { "--sampler", "ddim", "--sample-steps", "3", "--no-progress", "--device", "cpu" };

    private static Dictionary<string, string> Files(params string[] folders) =>
        folders.SelectMany(f => Directory.Exists(f) ? Directory.GetFiles(f) : Array.Empty<string>())
            .ToDictionary(p => Path.GetFileName(p), p => Convert.ToBase64String(File.ReadAllBytes(p)));

    [Theory]
    [InlineData(7, 2, 3)]   // 4 batches over 3 shards: 2, 1, 1
    [InlineData(3, 2, 3)]   // 2 batches over 3 shards: shard 2 owns none and writes nothing
    [InlineData(5, 5, 1)]   // one shard of one is the whole job
    public void TheUnionOfTheShardsFoldersIsTheSingleProcessFolderByteForByte(int count, int batch, int shards)
    {
        var dir = TestUtil.TempDir();
        var whole = Path.Combine(dir, "whole");
        var (code, output, err) = Run(new[] { "sample", "-c", _run.Run, "-n", $"{count}", "--batch-size", $"{batch}", "--seed", "11", "-o", whole }.Concat(Fast).ToArray());
        Assert.True(code == 0, err + output);
        var parts = new string[shards];
        for (int i = 0; i < shards; i++)
        {
            parts[i] = Path.Combine(dir, $"part{i}");
            (code, output, err) = Run(new[] { "sample", "-c", _run.Run, "-n", $"{count}", "--batch-size", $"{batch}", "--seed", "11", "-o", parts[i], "--shard", $"{i}/{shards}" }.Concat(Fast).ToArray());
            Assert.True(code == 0, err + output);
            Assert.Contains($"shard {i}/{shards}", output);
            // Shard i holds exactly the images of its batches (b mod shards = i).
            var expected = Enumerable.Range(0, count).Where(j => j / batch % shards == i).Select(j => $"sample_{j:D5}.png").ToArray();
            Assert.Equal(expected, Directory.GetFiles(parts[i]).Select(Path.GetFileName).Order().ToArray());
        }
        var single = Files(whole);
        Assert.Equal(count, single.Count);
        var union = Files(parts);
        Assert.Equal(single.Keys.Order(), union.Keys.Order());
        foreach (var (name, bytes) in single) Assert.Equal(bytes, union[name]);
    }

    [Theory]
    [InlineData("3/3", "--shard 3/3: the index must be in [0, 3)")]
    [InlineData("-1/2", "--shard -1/2: the index must be in [0, 2)")]
    [InlineData("0/0", "--shard 0/0: the shard count must be at least 1")]
    [InlineData("1", "--shard 1: must be INDEX/COUNT")]
    [InlineData("a/b", "--shard a/b: must be INDEX/COUNT")]
    [InlineData("1/2/3", "--shard 1/2/3: must be INDEX/COUNT")]
    public void MalformedShardsAreOneLineErrors(string shard, string message)
    {
        var folder = Path.Combine(TestUtil.TempDir(), "out");
        var (code, _, err) = Run(new[] { "sample", "-c", _run.Run, "-n", "2", "-o", folder, "--shard", shard }.Concat(Fast).ToArray());
        Assert.Equal(1, code);
        Assert.Single(err.Trim().Split('\n'));
        Assert.Contains(message, err);
        Assert.False(Directory.Exists(folder));
    }

    [Fact]
    public void AGridCannotBeSharded()
    {
        var grid = Path.Combine(TestUtil.TempDir(), "grid.png");
        var (code, _, err) = Run(new[] { "sample", "-c", _run.Run, "-n", "2", "-o", grid, "--shard", "0/2" }.Concat(Fast).ToArray());
        Assert.Equal(1, code);
        Assert.Single(err.Trim().Split('\n'));
        Assert.Contains("a grid cannot be split", err);
        Assert.False(File.Exists(grid));
    }

    private static string WriteIdx(string dir, string name, int count, long seed)
    {
        using var data = TestUtil.TinyData(count: count, seed: seed);
        var path = Path.Combine(dir, name + "-images-idx3-ubyte");
        Idx.WriteImages(path, data.Images, gzip: false);
        return path;
    }

    private static void AssertSameStatistics(FeatureStatistics expected, FeatureStatistics actual)
    {
        Assert.Equal(expected.Dim, actual.Dim);
        double muScale = expected.Mu.Max(Math.Abs), sigmaScale = expected.Sigma.Cast<double>().Max(Math.Abs);
        for (int i = 0; i < expected.Dim; i++)
        {
            Assert.True(Math.Abs(expected.Mu[i] - actual.Mu[i]) <= 1e-12 * muScale, $"mu[{i}]: {expected.Mu[i]:R} vs {actual.Mu[i]:R}");
            for (int j = 0; j < expected.Dim; j++)
                Assert.True(Math.Abs(expected.Sigma[i, j] - actual.Sigma[i, j]) <= 1e-12 * sigmaScale,
                    $"sigma[{i}, {j}]: {expected.Sigma[i, j]:R} vs {actual.Sigma[i, j]:R}");
        }
    }

    /// <summary>Writes each shard's part of a source with <c>stats --shard</c>, and the unsharded statistics; returns both.</summary>
    private static (string Whole, string[] Parts) StatsInShards(string dir, string source, int shards, params string[] extra)
    {
        var whole = Path.Combine(dir, "whole.npz");
        var (code, output, err) = Run(new[] { "stats", source, "-o", whole, "--classifier", "mnist", "--no-progress" }.Concat(extra).ToArray());
        Assert.True(code == 0, err + output);
        var parts = new string[shards];
        for (int i = 0; i < shards; i++)
        {
            parts[i] = Path.Combine(dir, $"part_{i}.npz");
            (code, output, err) = Run(new[] { "stats", source, "-o", parts[i], "--classifier", "mnist", "--no-progress", "--shard", $"{i}/{shards}" }.Concat(extra).ToArray());
            Assert.True(code == 0, err + output);
            Assert.Contains($"shard {i}/{shards}", output);
        }
        return (whole, parts);
    }

    private static string Merge(string dir, string name, params string[] parts)
    {
        var merged = Path.Combine(dir, name);
        var (code, output, err) = Run(new[] { "stats", "--merge" }.Concat(parts).Concat(new[] { "-o", merged }).ToArray());
        Assert.True(code == 0, err + output);
        return merged;
    }

    [Fact]
    public void MergedShardsOfADataSetEqualTheSingleProcessStatisticsInAnyOrder()
    {
        var dir = TestUtil.TempDir();
        var real = WriteIdx(dir, "real", 23, seed: 4);
        // Blocks of 4 images (the feature batch size): 6 blocks over 3 shards.
        var (whole, parts) = StatsInShards(dir, real, 3, "--batch-size", "4");
        var sums = parts.Select(FeatureSums.LoadNpz).ToArray();
        Assert.Equal(new double[] { 8, 8, 7 }, sums.Select(s => s.Count)); // blocks 0 and 3, 1 and 4, 2 and 5 (3 images)
        Assert.All(sums, s => Assert.Equal(23, s.SourceCount));
        Assert.All(sums, s => Assert.Equal("classifier/mnist", s.Extractor));

        var merged = Merge(dir, "merged.npz", parts);
        AssertSameStatistics(FeatureStatistics.LoadNpz(whole), FeatureStatistics.LoadNpz(merged));
        // The parts are added in shard order whatever order they are given in: the same numbers, bit for bit
        // (not the same file bytes: the zip entries carry the time they were written).
        var reversed = Merge(dir, "reversed.npz", parts.Reverse().ToArray());
        var (a, b) = (NpzFile.Read(merged), NpzFile.Read(reversed));
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var key in a.Keys) Assert.Equal(a[key].Data, b[key].Data);
    }

    [Fact]
    public void MergedShardsOfAFolderAndOfACheckpointEqualTheSingleProcessStatistics()
    {
        var dir = TestUtil.TempDir();
        var folder = Path.Combine(dir, "images");
        using (var data = TestUtil.TinyData(count: 9, seed: 5))
            Ddpm.Imaging.ImageIO.SaveFolder(data.Images, folder);
        var (whole, parts) = StatsInShards(Path.Combine(dir, "f"), folder, 4, "--batch-size", "2");
        AssertSameStatistics(FeatureStatistics.LoadNpz(whole), FeatureStatistics.LoadNpz(Merge(dir, "folder.npz", parts)));

        // A checkpoint: 7 samples in batches of 2 over 3 shards draw the images one process draws.
        (whole, parts) = StatsInShards(Path.Combine(dir, "c"), _run.Run, 3, "--count", "7", "--sample-batch-size", "2",
            "--seed", "3", "--sampler", "ddim", "--sample-steps", "3", "--device", "cpu");
        Assert.Equal(new double[] { 3, 2, 2 }, parts.Select(p => FeatureSums.LoadNpz(p).Count));
        AssertSameStatistics(FeatureStatistics.LoadNpz(whole), FeatureStatistics.LoadNpz(Merge(dir, "checkpoint.npz", parts)));
    }

    [Fact]
    public void MergeRefusesMismatchedDuplicateAndMissingPartsAndFidRefusesAPart()
    {
        var dir = TestUtil.TempDir();
        var real = WriteIdx(dir, "real", 12, seed: 6);
        var (whole, parts) = StatsInShards(dir, real, 3);

        void Refused(string contains, params string[] args)
        {
            var (code, output, err) = Run(args);
            Assert.True(code == 1, output + err);
            Assert.Single(err.Trim().Split('\n'));
            Assert.Contains(contains, err);
        }
        var outNpz = Path.Combine(dir, "out.npz");
        Refused("given twice", "stats", "--merge", parts[0], parts[1], parts[1], parts[2], "-o", outNpz);
        Refused("shard 2/3 missing", "stats", "--merge", parts[0], parts[1], "-o", outNpz);

        var p = FeatureSums.LoadNpz(parts[2]);
        var other = Path.Combine(dir, "other.npz");
        new FeatureSums("classifier/fashion-mnist", p.Shard, p.SourceCount, p.Count, p.Sum, p.SumOuter).SaveNpz(other);
        Refused("different extractors", "stats", "--merge", parts[0], parts[1], other, "-o", outNpz);
        new FeatureSums(p.Extractor, p.Shard, p.SourceCount, p.Count, p.Sum[..^1], new double[p.Dim - 1, p.Dim - 1]).SaveNpz(other);
        Refused("different dimensions", "stats", "--merge", parts[0], parts[1], other, "-o", outNpz);
        new FeatureSums(p.Extractor, new global::Ddpm.Distributed.Shard(2, 4), p.SourceCount, p.Count, p.Sum, p.SumOuter).SaveNpz(other);
        Refused("different jobs", "stats", "--merge", parts[0], parts[1], other, "-o", outNpz);
        Refused("not the partial sums", "stats", "--merge", parts[0], whole, "-o", outNpz);
        Refused("--merge and --shard", "stats", "--merge", parts[0], "--shard", "0/3", "-o", outNpz);
        Refused("give one or the other", "stats", real, "--merge", parts[0], "-o", outNpz);
        Refused("give a SOURCE", "stats", "-o", outNpz);
        Assert.False(File.Exists(outNpz));

        Refused("merge every shard's part first", "fid", parts[0], whole, "-o", Path.Combine(dir, "fid.json"), "--no-progress");
        Refused("merge every shard's part first", "distance", whole, parts[1], "-o", Path.Combine(dir, "d.json"), "--no-progress");
        var ex = Assert.Throws<DdpmException>(() => FeatureStatistics.LoadNpz(parts[0]));
        Assert.Contains("partial feature sums", ex.Message);
    }
}

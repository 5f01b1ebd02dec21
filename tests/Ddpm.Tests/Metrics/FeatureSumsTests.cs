using Ddpm.Distributed;
using Ddpm.Metrics;
using static TorchSharp.torch;

namespace Ddpm.Tests.Metrics;

/// <summary>The shard rule and the partial sums that add up to the statistics of all features.</summary>
public class FeatureSumsTests
{
    [Fact]
    public void ShardsParseAndOwnEveryUnitOnce()
    {
        Assert.Equal(new Shard(3, 8), Shard.Parse("3/8"));
        Assert.Equal(new Shard(0, 1), Shard.Parse(" 0/1 "));
        Assert.Equal("3/8", Shard.Parse("3/8").ToString());
        Assert.True(Shard.Whole.IsWhole);
        foreach (var bad in new[] { "", "3", "3/", "/3", "a/2", "1/2/3", "2/2", "-1/2", "0/0", "1.5/2" })
        {
            var e = Assert.Throws<DdpmException>(() => Shard.Parse(bad));
            Assert.Equal("shard", e.Setting);
            Assert.DoesNotContain('\n', e.Message);
        }
        for (int shards = 1; shards <= 5; shards++)
            for (int count = 1; count <= 13; count++)
                for (int batch = 1; batch <= 4; batch++)
                {
                    var all = Enumerable.Range(0, shards).Select(i => new Shard(i, shards)).ToArray();
                    var batches = all.SelectMany(s => s.Batches(count, batch)).Order().ToArray();
                    Assert.Equal(Enumerable.Range(0, (count + batch - 1) / batch), batches);
                    Assert.Equal(count, all.Sum(s => s.ImagesInBatches(count, batch)));
                    Assert.Equal(count, all.Sum(s => s.OwnedOf(count)));
                    Assert.All(all, s => Assert.Equal(Enumerable.Range(0, count).Count(j => s.Owns(j)), s.OwnedOf(count)));
                }
    }

    [Fact]
    public void SumsOfShardsMergeToTheStatisticsOfAllFeatures()
    {
        using var gen = new Generator(5, CPU);
        // Features with a mean far from 0 (as post-ReLU features have), float32 as the extractors give them.
        using var x = (randn(new long[] { 50, 6 }, generator: gen) * 0.3 + 2).to(ScalarType.Float32);
        var expected = FeatureStatistics.FromFeatures(x);
        var parts = Enumerable.Range(0, 4).Select(i =>
        {
            var shard = new Shard(i, 4);
            using var mine = x[TensorIndex.Slice(i, null, 4)];
            return FeatureSums.FromFeatures(mine, "test", shard, 50);
        }).ToList();
        var merged = FeatureSums.Merge(parts).ToStatistics();
        Assert.Equal(50, merged.Count);
        double sigmaScale = expected.Sigma.Cast<double>().Max(Math.Abs);
        for (int i = 0; i < 6; i++)
        {
            Assert.Equal(expected.Mu[i], merged.Mu[i], 1e-12 * Math.Abs(expected.Mu[i]));
            for (int j = 0; j < 6; j++) Assert.Equal(expected.Sigma[i, j], merged.Sigma[i, j], 1e-12 * sigmaScale);
        }
        // Any order of the parts: bit for bit the same.
        var shuffled = FeatureSums.Merge(new[] { parts[2], parts[0], parts[3], parts[1] }).ToStatistics();
        Assert.Equal(merged.Mu, shuffled.Mu);
        Assert.Equal(merged.Sigma, shuffled.Sigma);
        // A shard with no image merges as nothing.
        var empty = FeatureSums.Empty(6, "test", new Shard(4, 5), 50);
        var withEmpty = parts.Select(p => new FeatureSums(p.Extractor, new Shard(p.Shard.Index, 5), 50, p.Count, p.Sum, p.SumOuter)).Append(empty).ToList();
        Assert.Equal(merged.Mu, FeatureSums.Merge(withEmpty).ToStatistics().Mu);
    }

    [Fact]
    public void SumsRoundTripThroughTheirNpzAndAreNotStatistics()
    {
        using var gen = new Generator(6, CPU);
        using var x = randn(new long[] { 5, 3 }, generator: gen);
        var sums = FeatureSums.FromFeatures(x, "classifier/mnist", new Shard(1, 2), 9);
        var path = Path.Combine(TestUtil.TempDir(), "part.npz");
        sums.SaveNpz(path);
        var arrays = NpzFile.Read(path);
        Assert.Equal(new[] { "extractor", "n", "shard", "source_count", "sum", "sum_outer" }, arrays.Keys.Order());
        var back = FeatureSums.LoadNpz(path);
        Assert.Equal("classifier/mnist", back.Extractor);
        Assert.Equal(new Shard(1, 2), back.Shard);
        Assert.Equal(9, back.SourceCount);
        Assert.Equal(5, back.Count);
        Assert.Equal(sums.Sum, back.Sum);
        Assert.Equal(sums.SumOuter, back.SumOuter);
        Assert.Contains("merge every shard's part", Assert.Throws<DdpmException>(() => FeatureStatistics.LoadNpz(path)).Message);
        // The parts of one shard alone do not add up to the source.
        Assert.Contains("missing", Assert.Throws<DdpmException>(() => FeatureSums.Merge(new[] { back })).Message);
    }
}

using Ddpm.Metrics;
using static TorchSharp.torch;

namespace Ddpm.Tests.Metrics;

/// <summary>The class histogram, the IS analogue over a classifier's logits, and the real-vs-real subsets, against hand-computed values.</summary>
public class ClassifierScoreTests
{
    [Fact]
    public void HistogramCountsFractionsAndDistancesMatchHandValues()
    {
        var h = ClassHistogram.FromPredictions(new long[] { 0, 0, 1, 2 }, 4);
        Assert.Equal(new long[] { 2, 1, 1, 0 }, h.Counts);
        Assert.Equal(4, h.Total);
        Assert.Equal(new[] { 0.5, 0.25, 0.25, 0.0 }, h.Fractions);
        // TV from uniform: (|0.5 - 0.25| + 0 + 0 + |0 - 0.25|) / 2 = 0.25.
        Assert.Equal(0.25, h.TotalVariationFromUniform(), 12);
        // KL(p || U) = ln 4 - H(p), H(p) = 0.5 ln 2 + 2 (0.25 ln 4) = 1.5 ln 2, so KL = 0.5 ln 2.
        Assert.Equal(0.5 * Math.Log(2), h.KlFromUniform(), 12);
        var uniform = new ClassHistogram(new long[] { 3, 3, 3, 3 });
        Assert.Equal(0.0, uniform.TotalVariationFromUniform(), 12);
        Assert.Equal(0.0, uniform.KlFromUniform(), 12);
        Assert.Equal(0.25, h.TotalVariation(uniform), 12);
        Assert.Equal(0.5 * Math.Log(2), h.KlDivergence(uniform), 12);
        // The other way round, q has a zero where p does not: infinite.
        Assert.Equal(double.PositiveInfinity, uniform.KlDivergence(h));
        var single = ClassHistogram.FromPredictions(new long[] { 3, 3 }, 4);
        Assert.Equal(Math.Log(4), single.KlFromUniform(), 12);
        Assert.Equal(0.75, single.TotalVariationFromUniform(), 12);
    }

    [Fact]
    public void HistogramFromLogitsTakesTheArgmaxOfEachRow()
    {
        using var logits = tensor(new float[,] { { 0.1f, 2f, -1f }, { 5f, 0f, 0f }, { -3f, -2f, -1f }, { 0f, 9f, 1f } });
        var h = ClassHistogram.FromLogits(logits);
        Assert.Equal(new long[] { 1, 2, 1 }, h.Counts);
    }

    [Fact]
    public void HistogramRejectsBadInput()
    {
        Assert.Throws<DdpmException>(() => ClassHistogram.FromPredictions(new long[] { 0, 4 }, 4));
        Assert.Throws<DdpmException>(() => new ClassHistogram(new long[] { 0, 0 }));
        var a = new ClassHistogram(new long[] { 1, 1 });
        var b = new ClassHistogram(new long[] { 1, 1, 1 });
        var e = Assert.Throws<DdpmException>(() => a.TotalVariation(b));
        Assert.Contains("2 and 3 classes", e.Message);
    }

    [Fact]
    public void ScoreAnalogueOfTwoSoftPredictionsMatchesHandValue()
    {
        // Rows softmax to (3/4, 1/4) and (1/4, 3/4); the marginal is (1/2, 1/2); each row's KL is
        // 3/4 ln(3/2) + 1/4 ln(1/2), so the score is exp of that.
        double l3 = Math.Log(3);
        var logits = new double[,] { { l3, 0 }, { 0, l3 } };
        var s = InceptionScore.FromLogits(logits, splits: 1);
        Assert.Equal(Math.Pow(1.5, 0.75) * Math.Pow(0.5, 0.25), s.Mean, 12);
        Assert.Equal(0.0, s.Std, 12);
    }

    [Fact]
    public void ScoreAnalogueOfConfidentBalancedPredictionsIsTheClassCount()
    {
        // Four images, each predicted with certainty as a different class: exp(ln 4) = 4 (the maximum for 4 classes);
        // all four as the same class: 1 (the minimum).
        var spread = new double[4, 4];
        var same = new double[4, 4];
        for (int i = 0; i < 4; i++) { spread[i, i] = 60; same[i, 0] = 60; }
        Assert.Equal(4.0, InceptionScore.FromLogits(spread, splits: 1).Mean, 9);
        Assert.Equal(1.0, InceptionScore.FromLogits(same, splits: 1).Mean, 9);
    }

    [Fact]
    public void DisjointSubsetsAreDisjointSeededAndNeedTwiceTheCount()
    {
        var (a, b) = DomainScores.DisjointSubsets(100, 40, seed: 5);
        Assert.Equal(40, a.Length);
        Assert.Equal(40, b.Length);
        Assert.Empty(a.Intersect(b));
        Assert.Equal(80, a.Concat(b).Distinct().Count());
        Assert.All(a.Concat(b), i => Assert.InRange(i, 0, 99));
        var (a2, b2) = DomainScores.DisjointSubsets(100, 40, seed: 5);
        Assert.Equal(a, a2);
        Assert.Equal(b, b2);
        var (a3, _) = DomainScores.DisjointSubsets(100, 40, seed: 6);
        Assert.NotEqual(a, a3);
        var e = Assert.Throws<DdpmException>(() => DomainScores.DisjointSubsets(79, 40, seed: 0));
        Assert.Contains("80", e.Message);
        Assert.Contains("79", e.Message);
    }

    [Fact]
    public void RealFloorOfFeaturesIsTheFrechetDistanceOfTheTwoSubsetsByHand()
    {
        // 12 rows of 3-D features; the floor of 6 with seed 2 splits a permutation of 0..11 into its first and last 6.
        // The permutation (BatchSampler.Shuffle(12, 2, 0)) is the one tests/Ddpm.Tests/Data/Fixtures/shuffle_reference.py
        // prints: [4, 0, 9, 11, 7, 2, 3, 10, 5, 6, 1, 8]. Means, covariances (over N - 1) and the Frechet distance are then
        // computed in plain float64 loops (HandStatistics: Denman-Beavers square root, no eigendecomposition).
        var rng = new Random(11);
        var rows = Enumerable.Range(0, 12).Select(_ => new[] { rng.NextDouble() * 4 - 2, rng.NextDouble(), rng.NextDouble() * 3 }).ToArray();
        var flat = new double[12, 3];
        for (int i = 0; i < 12; i++) for (int j = 0; j < 3; j++) flat[i, j] = rows[i][j];
        using var features = tensor(flat, ScalarType.Float64);
        double floor = DomainScores.RealFloor(features, 6, seed: 2);

        int[] first = { 4, 0, 9, 11, 7, 2 }, second = { 3, 10, 5, 6, 1, 8 };
        double expected = HandStatistics.Frechet(first.Select(i => rows[i]).ToArray(), second.Select(i => rows[i]).ToArray());
        // Both are float64 throughout; 1e-10 covers the different algorithms' round-off on values of order 1.
        Assert.True(expected > 0.1, $"the two halves differ: {expected}");
        Assert.Equal(expected, floor, 10);
        var (a, b) = DomainScores.DisjointSubsets(12, 6, seed: 2);
        Assert.Equal(first.Select(i => (long)i), a);
        Assert.Equal(second.Select(i => (long)i), b);
    }
}

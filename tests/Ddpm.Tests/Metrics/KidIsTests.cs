using Ddpm.Metrics;

namespace Ddpm.Tests.Metrics;

public class KernelInceptionDistanceTests
{
    private static double[,] Random2D(int n, int d, int seed, double shift)
    {
        var rng = new Random(seed);
        var a = new double[n, d];
        for (int i = 0; i < n; i++) for (int j = 0; j < d; j++) a[i, j] = rng.NextDouble() * 2 - 1 + shift;
        return a;
    }

    private static double K(double[,] a, int i, double[,] b, int j)
    {
        int d = a.GetLength(1);
        double dot = 0;
        for (int k = 0; k < d; k++) dot += a[i, k] * b[j, k];
        return Math.Pow(dot / d + 1, 3);
    }

    [Fact]
    public void WholeSetSubsetMatchesDirectLoop()
    {
        var x = Random2D(12, 4, 1, 0.0);
        var y = Random2D(12, 4, 2, 1.0);
        int m = 12;
        double xx = 0, yy = 0, xy = 0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++)
            {
                if (i != j) { xx += K(x, i, x, j); yy += K(y, i, y, j); }
                xy += K(x, i, y, j);
            }
        double expected = (xx + yy) / (m * (m - 1.0)) - 2 * xy / (m * (double)m);
        // One subset the size of the whole set: any permutation gives the same value.
        var r = KernelInceptionDistance.Compute(x, y, subsets: 3, subsetSize: 1000, seed: 7);
        Assert.Equal(expected, r.Mean, 10);
        Assert.Equal(0.0, r.Std, 10);
        Assert.True(expected > 0);
    }

    [Fact]
    public void IdenticalSetsGiveAboutZeroAndSeedsRepeat()
    {
        var x = Random2D(60, 5, 3, 0.0);
        var same = KernelInceptionDistance.Compute(x, x, subsets: 1, subsetSize: 60);
        // Identical full sets: (2 S_offdiag)/(m(m-1)) - 2 S_all/m^2 is small but not exactly 0; well below a shifted set.
        var shifted = KernelInceptionDistance.Compute(x, Random2D(60, 5, 4, 0.5), subsets: 5, subsetSize: 30, seed: 1);
        Assert.True(Math.Abs(same.Mean) < 0.05 * shifted.Mean, $"{same.Mean} vs {shifted.Mean}");
        var again = KernelInceptionDistance.Compute(x, Random2D(60, 5, 4, 0.5), subsets: 5, subsetSize: 30, seed: 1);
        Assert.Equal(shifted, again);
        // Independent draws from the same distribution: about 0 on average.
        var x2 = Random2D(60, 5, 9, 0.0);
        var r = KernelInceptionDistance.Compute(x, x2, subsets: 20, subsetSize: 40, seed: 3);
        Assert.True(Math.Abs(r.Mean) < 0.1 * shifted.Mean, $"{r.Mean} vs {shifted.Mean}");
    }

    [Fact]
    public void BadInputsThrow()
    {
        Assert.Throws<DdpmException>(() => KernelInceptionDistance.Compute(Random2D(5, 3, 1, 0), Random2D(5, 4, 1, 0)));
        Assert.Throws<DdpmException>(() => KernelInceptionDistance.Compute(Random2D(1, 3, 1, 0), Random2D(5, 3, 1, 0)));
    }
}

public class InceptionScoreTests
{
    [Fact]
    public void UniformPredictionsScoreOne()
    {
        var p = new double[50, 4];
        for (int i = 0; i < 50; i++) for (int k = 0; k < 4; k++) p[i, k] = 0.25;
        var r = InceptionScore.FromProbabilities(p);
        Assert.Equal(1.0, r.Mean, 10);
        Assert.Equal(0.0, r.Std, 10);
        // Equal logits are uniform too.
        Assert.Equal(1.0, InceptionScore.FromLogits(new double[50, 4]).Mean, 10);
    }

    [Fact]
    public void EvenOneHotPredictionsScoreK()
    {
        const int k = 5, splits = 10, n = 100; // 10 rows per split, each class twice per split
        var p = new double[n, k];
        for (int i = 0; i < n; i++) p[i, i % k] = 1.0;
        var r = InceptionScore.FromProbabilities(p, splits);
        Assert.Equal(k, r.Mean, 9);
        Assert.Equal(0.0, r.Std, 9);
        // Confident logits approach the same value.
        var logits = new double[n, k];
        for (int i = 0; i < n; i++) logits[i, i % k] = 50;
        Assert.Equal(k, InceptionScore.FromLogits(logits, splits).Mean, 6);
    }

    [Fact]
    public void TwoPointHandComputedValue()
    {
        // Rows (0.9, 0.1) and (0.1, 0.9): p(y) = (0.5, 0.5), KL per row = 0.9 ln 1.8 + 0.1 ln 0.2.
        var p = new double[,] { { 0.9, 0.1 }, { 0.1, 0.9 } };
        double expected = Math.Exp(0.9 * Math.Log(1.8) + 0.1 * Math.Log(0.2));
        Assert.Equal(expected, InceptionScore.FromProbabilities(p, splits: 1).Mean, 12);
    }

    [Fact]
    public void BadInputsThrow()
    {
        Assert.Throws<DdpmException>(() => InceptionScore.FromProbabilities(new double[,] { { 0.5, 0.6 } }, splits: 1));
        Assert.Throws<DdpmException>(() => InceptionScore.FromProbabilities(new double[,] { { 0.5, 0.5 } }, splits: 10));
    }
}

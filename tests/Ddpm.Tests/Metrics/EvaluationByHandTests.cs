using Ddpm.Imaging;
using Ddpm.Metrics;
using Ddpm.Metrics.Evaluation;
using static TorchSharp.torch;

namespace Ddpm.Tests.Metrics;

/// <summary>
/// A feature extractor whose output is known exactly from the pixels: for 2x2 grey images with 8-bit pixels
/// (b0, b1, b2, b3), features (b0, b1, b2) / 256 and logits (b1, b2, b3) / 64 - 2 (all exact in float32).
/// </summary>
internal sealed class PixelBytesExtractor : IFeatureExtractor
{
    public string Name => "test/pixel-bytes";
    public int FeatureDims => 3;
    public int Classes => 3;
    public Device Device => CPU;

    public FeatureBatch Extract(Tensor images)
    {
        using var scope = NewDisposeScope();
        var q = ImageIO.Quantize(images).to(ScalarType.Float32).flatten(1);
        var features = q.narrow(1, 0, 3) / 256f;
        var logits = q.narrow(1, 1, 3) / 64f - 2f;
        return new FeatureBatch(features.MoveToOuterDisposeScope(), logits.MoveToOuterDisposeScope());
    }

    public void Dispose() { }

    /// <summary>Images (N, 1, 2, 2) in [-1, 1] holding exactly the given bytes (b / 127.5 - 1 rounds back to b).</summary>
    public static Tensor Images(byte[][] pixels)
    {
        var data = pixels.SelectMany(p => p.Select(b => (float)(b / 127.5 - 1))).ToArray();
        return tensor(data).view(pixels.Length, 1, 2, 2);
    }

    public static double[] Features(byte[] p) => new[] { p[0] / 256.0, p[1] / 256.0, p[2] / 256.0 };
    public static double[] Logits(byte[] p) => new[] { p[1] / 64.0 - 2, p[2] / 64.0 - 2, p[3] / 64.0 - 2 };
}

/// <summary>
/// The Frechet distance, KID, Inception Score, class histograms and the real-vs-real floor that
/// <see cref="DistanceEvaluation.Run"/> reports, each recomputed by hand in float64 from the known features and logits
/// (reference.md section 4: KID is the unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3; IS = exp(E KL(p(y|x) || p(y)))
/// over consecutive splits, mean and population std).
/// </summary>
public class EvaluationByHandTests
{
    private static byte[][] Pixels(int count, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, 4).Select(_ => (byte)rng.Next(256)).ToArray()).ToArray();
    }

    private static double Kernel(double[] x, double[] y) => Math.Pow(x.Zip(y, (a, b) => a * b).Sum() / x.Length + 1, 3);

    /// <summary>Unbiased MMD^2: mean of k over distinct pairs within each set, minus twice the mean over all cross pairs.</summary>
    private static double UnbiasedMmd2(double[][] x, double[][] y)
    {
        int m = x.Length;
        double xx = 0, yy = 0, xy = 0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++)
            {
                if (i != j) { xx += Kernel(x[i], x[j]); yy += Kernel(y[i], y[j]); }
                xy += Kernel(x[i], y[j]);
            }
        return (xx + yy) / (m * (m - 1.0)) - 2 * xy / ((double)m * m);
    }

    private static double[] Softmax(double[] l)
    {
        double max = l.Max();
        var e = l.Select(v => Math.Exp(v - max)).ToArray();
        return e.Select(v => v / e.Sum()).ToArray();
    }

    /// <summary>exp(mean over rows of KL(p_i || mean p)) of one split.</summary>
    private static double SplitScore(double[][] p)
    {
        int k = p[0].Length;
        var py = Enumerable.Range(0, k).Select(c => p.Average(r => r[c])).ToArray();
        return Math.Exp(p.Average(r => Enumerable.Range(0, k).Sum(c => r[c] * Math.Log(r[c] / py[c]))));
    }

    private static int Argmax(double[] v)
    {
        var sorted = v.OrderDescending().ToArray();
        Assert.True(sorted[0] > sorted[1], "the hand expectation needs a unique arg max");
        return Array.IndexOf(v, sorted[0]);
    }

    private static double TotalVariation(double[] p, double[] q) => 0.5 * p.Zip(q, (a, b) => Math.Abs(a - b)).Sum();

    [Fact]
    public void DistanceKidScoresAndHistogramsEqualTheirHandValues()
    {
        var pa = Pixels(6, 1);
        var pb = Pixels(6, 2);
        using var ex = new PixelBytesExtractor();
        using var scope = NewDisposeScope();
        using var a = ImageSource.FromTensor(PixelBytesExtractor.Images(pa), "a");
        using var b = ImageSource.FromTensor(PixelBytesExtractor.Images(pb), "b");
        // KID over subsets of min(1000, 6, 6) = 6: every subset is a whole set, so each equals the full-set MMD^2.
        var r = DistanceEvaluation.Run(ex, a, b, new DistanceOptions { Kid = true, KidSubsets = 3, ClassScores = true, Splits = 2, BatchSize = 4 });

        var fa = pa.Select(PixelBytesExtractor.Features).ToArray();
        var fb = pb.Select(PixelBytesExtractor.Features).ToArray();
        // float64 on both sides, values of order 0.1: 1e-10 leaves room only for round-off of the two algorithms.
        Assert.Equal(HandStatistics.Frechet(fa, fb), r.Distance, 10);
        Assert.Equal(UnbiasedMmd2(fa, fb), r.Kid!.Value.Mean, 12);
        Assert.Equal(0.0, r.Kid.Value.Std, 12);

        foreach (var (side, pixels) in new[] { (r.A, pa), (r.B, pb) })
        {
            var p = pixels.Select(x => Softmax(PixelBytesExtractor.Logits(x))).ToArray();
            double s1 = SplitScore(p[..3]), s2 = SplitScore(p[3..]);
            Assert.Equal((s1 + s2) / 2, side.Score!.Value.Mean, 12);
            Assert.Equal(Math.Abs(s1 - s2) / 2, side.Score.Value.Std, 12); // population std of two values
            var counts = new long[3];
            foreach (var x in pixels) counts[Argmax(PixelBytesExtractor.Logits(x))]++;
            Assert.Equal(counts, side.ClassCounts);
            Assert.Equal(TotalVariation(counts.Select(c => c / 6.0).ToArray(), new[] { 1 / 3.0, 1 / 3.0, 1 / 3.0 }), side.ClassImbalance!.Value, 12);
        }
        Assert.Equal(TotalVariation(r.A.ClassCounts!.Select(c => c / 6.0).ToArray(), r.B.ClassCounts!.Select(c => c / 6.0).ToArray()),
            r.ClassHistogramDistance!.Value, 12);
        Assert.Null(r.Floor); // not asked for
    }

    [Fact]
    public void KidOverRandomSubsetsAveragesTheSubsetsMmd()
    {
        // Subsets of 2 out of 3 rows: the mean over 200 subsets lies between the smallest and the largest of the nine
        // possible (pair, pair) MMD^2 values and near their average (each pair pair equally likely).
        var pa = Pixels(3, 3);
        var pb = Pixels(3, 4);
        using var ex = new PixelBytesExtractor();
        using var scope = NewDisposeScope();
        using var a = ImageSource.FromTensor(PixelBytesExtractor.Images(pa), "a");
        using var b = ImageSource.FromTensor(PixelBytesExtractor.Images(pb), "b");
        var r = DistanceEvaluation.Run(ex, a, b, new DistanceOptions { Kid = true, KidSubsets = 200, KidSubsetSize = 2 });
        var fa = pa.Select(PixelBytesExtractor.Features).ToArray();
        var fb = pb.Select(PixelBytesExtractor.Features).ToArray();
        int[][] pairs = { new[] { 0, 1 }, new[] { 0, 2 }, new[] { 1, 2 } };
        var values = pairs.SelectMany(i => pairs.Select(j => UnbiasedMmd2(i.Select(k => fa[k]).ToArray(), j.Select(k => fb[k]).ToArray()))).ToArray();
        double mean = values.Average(), sd = Math.Sqrt(values.Average(v => (v - mean) * (v - mean)));
        Assert.InRange(r.Kid!.Value.Mean, values.Min(), values.Max());
        // 200 subsets: standard error sd / sqrt(200); 4 standard errors.
        Assert.InRange(r.Kid.Value.Mean, mean - 4 * sd / Math.Sqrt(200), mean + 4 * sd / Math.Sqrt(200));
    }

    [Fact]
    public void FloorIsTheDistanceBetweenTheTwoSeededHalvesOfTheRealSet()
    {
        var pa = Pixels(6, 5);
        var pb = Pixels(12, 6);
        using var ex = new PixelBytesExtractor();
        using var scope = NewDisposeScope();
        using var a = ImageSource.FromTensor(PixelBytesExtractor.Images(pa), "generated");
        using var b = ImageSource.FromTensor(PixelBytesExtractor.Images(pb), "real");
        var r = DistanceEvaluation.Run(ex, a, b, new DistanceOptions { Floor = true, Seed = 3 });
        // Seed 3 over 12 images: the permutation tests/Ddpm.Tests/Data/Fixtures/shuffle_reference.py prints for
        // (n = 12, seed = 3, epoch = 0) is [11, 0, 4, 5, 3, 7, 9, 1, 8, 10, 6, 2]; the floor compares its first 6 with its last 6.
        var fb = pb.Select(PixelBytesExtractor.Features).ToArray();
        int[] first = { 11, 0, 4, 5, 3, 7 }, second = { 9, 1, 8, 10, 6, 2 };
        double expected = HandStatistics.Frechet(first.Select(i => fb[i]).ToArray(), second.Select(i => fb[i]).ToArray());
        Assert.Equal("real", r.Floor!.Data);
        Assert.Equal(6, r.Floor.Count);
        Assert.Equal(expected, r.Floor.Distance, 10);
        Assert.Equal(HandStatistics.Frechet(pa.Select(PixelBytesExtractor.Features).ToArray(), fb), r.Distance, 10);
    }
}

using Ddpm.Data;
using static TorchSharp.torch;

namespace Ddpm.Metrics;

/// <summary>
/// Scores of generated images against real ones in the space of a feature extractor with a classifier head (the offline
/// classifier, or Inception), each beside its floor: the same distance between two disjoint real sets of the same size,
/// which is what a perfect generator would reach at that sample count.
/// </summary>
/// <param name="Extractor">The extractor's name, e.g. "classifier/mnist".</param>
/// <param name="Count">N: the number of samples, and of real images in each real set.</param>
/// <param name="Distance">Frechet distance between the samples and real set A.</param>
/// <param name="DistanceFloor">Frechet distance between real sets B and A (disjoint, N each): the floor.</param>
/// <param name="Score">Inception-Score analogue of the samples (mean and std over the splits).</param>
/// <param name="ScoreReal">The same score of real set A.</param>
/// <param name="Histogram">Predicted classes of the samples.</param>
/// <param name="HistogramReal">Predicted classes of real set A.</param>
/// <param name="Seed">Seed of the draw of A and B.</param>
public sealed record DomainReport(
    string Extractor, int Count, double Distance, double DistanceFloor, MetricEstimate Score, MetricEstimate ScoreReal,
    ClassHistogram Histogram, ClassHistogram HistogramReal, long Seed);

/// <summary>Frechet distances with their real-vs-real floor, the Inception-Score analogue and class histograms (see <see cref="DomainReport"/>).</summary>
public static class DomainScores
{
    /// <summary>
    /// Two disjoint random subsets of <paramref name="count"/> rows each: the first 2 count entries of a permutation of
    /// 0..total-1 (Fisher-Yates with SplitMix64, <see cref="BatchSampler.Shuffle"/>(total, seed, 0)). Errors when total &lt; 2 count.
    /// </summary>
    public static (long[] First, long[] Second) DisjointSubsets(int total, int count, long seed)
    {
        if (count < 2) throw new DdpmException($"real-vs-real floor: subsets of {count} images are too small (need at least 2 for a covariance)");
        if (total < 2L * count)
            throw new DdpmException($"real-vs-real floor: two disjoint sets of {count} need {2L * count} real images, only {total} given");
        var perm = BatchSampler.Shuffle(total, seed, 0);
        return (perm.Take(count).Select(i => (long)i).ToArray(), perm.Skip(count).Take(count).Select(i => (long)i).ToArray());
    }

    /// <summary>The Frechet distance between two disjoint random sets of <paramref name="count"/> rows of real features (N, D).</summary>
    public static double RealFloor(Tensor realFeatures, int count, long seed = 0)
    {
        ArgumentNullException.ThrowIfNull(realFeatures);
        if (realFeatures.dim() != 2) throw new DdpmException($"real-vs-real floor: features must be (N, D), got shape ({string.Join(", ", realFeatures.shape)})");
        var (a, b) = DisjointSubsets((int)realFeatures.shape[0], count, seed);
        using var scope = NewDisposeScope();
        return FrechetDistance.Compute(Stats(realFeatures, a), Stats(realFeatures, b));
    }

    /// <summary>The floor computed from images: extracts their features, then <see cref="RealFloor(Tensor, int, long)"/>.</summary>
    public static double RealFloor(IFeatureExtractor extractor, Tensor realImages, int count, long seed = 0, int batchSize = 250)
    {
        ArgumentNullException.ThrowIfNull(extractor);
        ArgumentNullException.ThrowIfNull(realImages);
        var (a, b) = DisjointSubsets((int)realImages.shape[0], count, seed);
        using var scope = NewDisposeScope();
        var picked = realImages.index_select(0, tensor(a.Concat(b).ToArray(), ScalarType.Int64));
        var features = FeatureExtraction.ExtractAll(extractor, picked, batchSize).Features;
        return FrechetDistance.Compute(
            FeatureStatistics.FromFeatures(features.narrow(0, 0, count)),
            FeatureStatistics.FromFeatures(features.narrow(0, count, count)));
    }

    /// <summary>
    /// Scores <paramref name="samples"/> (N, C, H, W in [-1, 1]) against real images: 2N real images are drawn at random
    /// (seeded) as two disjoint sets A and B; Distance = FD(samples, A), DistanceFloor = FD(B, A); the score and the class
    /// histogram of the samples and of A. Needs at least 2N real images and an extractor with a classifier head.
    /// </summary>
    public static DomainReport Compare(IFeatureExtractor extractor, Tensor samples, Tensor realImages, long seed = 0,
        int splits = InceptionScore.DefaultSplits, int batchSize = 250)
    {
        ArgumentNullException.ThrowIfNull(extractor);
        ArgumentNullException.ThrowIfNull(samples);
        ArgumentNullException.ThrowIfNull(realImages);
        if (extractor.Classes < 1) throw new DdpmException($"{extractor.Name} has no classifier head: no score or class histogram");
        int n = (int)samples.shape[0];
        var (a, b) = DisjointSubsets((int)realImages.shape[0], n, seed);
        using var scope = NewDisposeScope();
        var real = FeatureExtraction.ExtractAll(extractor, realImages.index_select(0, tensor(a.Concat(b).ToArray(), ScalarType.Int64)), batchSize);
        var fake = FeatureExtraction.ExtractAll(extractor, samples, batchSize);
        var statsA = FeatureStatistics.FromFeatures(real.Features.narrow(0, 0, n));
        var statsB = FeatureStatistics.FromFeatures(real.Features.narrow(0, n, n));
        var logitsA = real.Logits!.narrow(0, 0, n);
        return new DomainReport(
            extractor.Name, n,
            FrechetDistance.Compute(FeatureStatistics.FromFeatures(fake.Features), statsA),
            FrechetDistance.Compute(statsB, statsA),
            InceptionScore.FromLogits(fake.Logits!, splits),
            InceptionScore.FromLogits(logitsA, splits),
            ClassHistogram.FromLogits(fake.Logits!),
            ClassHistogram.FromLogits(logitsA),
            seed);
    }

    private static FeatureStatistics Stats(Tensor features, long[] rows)
    {
        using var scope = NewDisposeScope();
        return FeatureStatistics.FromFeatures(features.index_select(0, tensor(rows, ScalarType.Int64)));
    }
}

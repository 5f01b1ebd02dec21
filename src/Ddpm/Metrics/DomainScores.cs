using Ddpm.Data;
using static TorchSharp.torch;

namespace Ddpm.Metrics;

/// <summary>
/// The real-vs-real floor: the Frechet distance between two disjoint random sets of real images of the same size, what a
/// perfect generator would reach at that sample count (Metrics.Evaluation.DistanceEvaluation reports the scores beside it).
/// </summary>
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

    private static FeatureStatistics Stats(Tensor features, long[] rows)
    {
        using var scope = NewDisposeScope();
        return FeatureStatistics.FromFeatures(features.index_select(0, tensor(rows, ScalarType.Int64)));
    }
}

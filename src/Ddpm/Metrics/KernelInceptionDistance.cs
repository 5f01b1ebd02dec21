using TorchSharp;
using static Ddpm.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Ddpm.Metrics;

/// <summary>Mean and standard deviation of a metric over subsets or splits.</summary>
public readonly record struct MetricEstimate(double Mean, double Std);

/// <summary>
/// Kernel Inception Distance (Binkowski et al. 2018, as torch-fidelity computes it): the unbiased MMD^2 estimate with the
/// cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets drawn without replacement.
/// </summary>
public static class KernelInceptionDistance
{
    public const int DefaultSubsets = 100;
    public const int DefaultSubsetSize = 1000;

    /// <summary>KID between two (N, D) feature matrices (float64).</summary>
    public static MetricEstimate Compute(double[,] features1, double[,] features2,
        int subsets = DefaultSubsets, int subsetSize = DefaultSubsetSize, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(features1);
        ArgumentNullException.ThrowIfNull(features2);
        using var scope = NewDisposeScope();
        return Compute(tensor(features1, ScalarType.Float64), tensor(features2, ScalarType.Float64), subsets, subsetSize, seed);
    }

    /// <summary>
    /// KID between two (N, D) feature tensors. The subset size is capped at the smaller sample count; subsets are drawn
    /// with <see cref="System.Random"/> seeded by <paramref name="seed"/>. Std is the population standard deviation over
    /// the subsets (numpy's <c>np.std</c>, as torch-fidelity reports it).
    /// </summary>
    public static MetricEstimate Compute(Tensor features1, Tensor features2,
        int subsets = DefaultSubsets, int subsetSize = DefaultSubsetSize, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(features1);
        ArgumentNullException.ThrowIfNull(features2);
        if (features1.dim() != 2 || features2.dim() != 2)
            throw new DdpmException($"KID: features must be (N, D), got shapes ({string.Join(", ", features1.shape)}) and ({string.Join(", ", features2.shape)})");
        if (features1.shape[1] != features2.shape[1])
            throw new DdpmException($"KID: feature dimensions differ ({features1.shape[1]} and {features2.shape[1]})");
        if (subsets < 1) throw new DdpmException($"KID: subsets must be at least 1, got {subsets}");
        int n1 = (int)features1.shape[0], n2 = (int)features2.shape[0];
        int m = Math.Min(subsetSize, Math.Min(n1, n2));
        if (m < 2) throw new DdpmException($"KID: need subsets of at least 2 samples (subset size {subsetSize}, sample counts {n1} and {n2})");

        using var scope = NewDisposeScope();
        var x = features1.detach().to(CPU).to_type(ScalarType.Float64);
        var y = features2.detach().to(CPU).to_type(ScalarType.Float64);
        double d = x.shape[1];
        var rng = new Random(seed);
        var values = new double[subsets];
        for (int s = 0; s < subsets; s++)
        {
            using var inner = NewDisposeScope();
            var xs = x.index_select(0, tensor(Choose(rng, n1, m)));
            var ys = y.index_select(0, tensor(Choose(rng, n2, m)));
            values[s] = UnbiasedMmd2(xs, ys, d);
        }
        double mean = values.Average();
        double std = Math.Sqrt(values.Select(v => (v - mean) * (v - mean)).Average());
        return new MetricEstimate(mean, std);
    }

    /// <summary>Unbiased MMD^2 between two equal-size samples (m, D) with the cubic polynomial kernel.</summary>
    internal static double UnbiasedMmd2(Tensor x, Tensor y, double d)
    {
        long m = x.shape[0];
        // Scalars passed to TorchSharp are explicit and held for the whole call; see Ddpm.Runtime.HeldScalars.
        // k(a, b) = (a.b / d + 1)^3, with the alpha of each + held (add(one, Int1)).
        using var dS = d.ToScalar();
        using var one = 1.0.ToScalar();
        using var three = 3.ToScalar();
        var kxx = (x.matmul(x.t()) / dS).add(one, Int1).pow(three);
        var kyy = (y.matmul(y.t()) / dS).add(one, Int1).pow(three);
        var kxy = (x.matmul(y.t()) / dS).add(one, Int1).pow(three);
        double offDiag = (kxx.sum() - kxx.trace()).add(kyy.sum(), Int1).sub(kyy.trace()).item<double>();
        double cross = kxy.sum().item<double>();
        return offDiag / (m * (m - 1.0)) - 2.0 * cross / ((double)m * m);
    }

    /// <summary>m distinct indices out of n (partial Fisher-Yates shuffle).</summary>
    private static long[] Choose(Random rng, int n, int m)
    {
        var perm = new long[n];
        for (int i = 0; i < n; i++) perm[i] = i;
        for (int i = 0; i < m; i++)
        {
            int j = rng.Next(i, n);
            (perm[i], perm[j]) = (perm[j], perm[i]);
        }
        return perm[..m];
    }
}

using TorchSharp;
using static Ddpm.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Ddpm.Metrics;

/// <summary>Frechet distance between two Gaussians, the core of FID.</summary>
public static class FrechetDistance
{
    /// <summary>
    /// |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr(sqrt(S1 S2)) in float64. Tr(sqrt(S1 S2)) is the sum of the square roots of
    /// the eigenvalues of A S2 A (symmetrised), A = sqrt(S1) from a symmetric eigendecomposition; negative eigenvalues
    /// (round-off) are clamped to 0. A covariance with an eigenvalue below -<see cref="PsdTolerance"/> times its largest
    /// magnitude is not a covariance (e.g. a corrupt statistics file) and is an error rather than being clamped.
    /// </summary>
    public static double Compute(FeatureStatistics a, FeatureStatistics b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Dim != b.Dim)
            throw new DdpmException($"Frechet distance: statistics have different dimensions ({a.Dim} and {b.Dim})");
        using var scope = NewDisposeScope();
        var mu1 = tensor(a.Mu, ScalarType.Float64);
        var mu2 = tensor(b.Mu, ScalarType.Float64);
        var s1 = Symmetrise(tensor(a.Sigma, ScalarType.Float64));
        var s2 = Symmetrise(tensor(b.Sigma, ScalarType.Float64));
        // Statistics from features or from a file were checked once already (FeatureStatistics.LoadNpz).
        if (!b.CovarianceIsPsd) FeatureStatistics.RequirePositiveSemiDefinite(linalg.eigvalsh(s2), "Frechet distance: the second statistics");

        var diff = mu1 - mu2;
        double meanTerm = diff.dot(diff).item<double>();
        double tr1 = s1.trace().item<double>();
        double tr2 = s2.trace().item<double>();

        var sqrtS1 = SqrtPsd(s1, "Frechet distance: the first statistics");
        var m = Symmetrise(sqrtS1.matmul(s2).matmul(sqrtS1));
        // Scalars passed to TorchSharp are explicit and held for the whole call; see Ddpm.Runtime.HeldScalars.
        using var zero = 0.0.ToScalar();
        var eig = linalg.eigvalsh(m).clamp_min(zero);
        double trSqrt = eig.sqrt().sum().item<double>();

        return meanTerm + tr1 + tr2 - 2.0 * trSqrt;
    }

    /// <summary>
    /// Relative size of a negative eigenvalue still taken as round-off (checked once when statistics are loaded from a
    /// file, on S1's eigendecomposition, which the square root needs anyway, and on S2 only when built from raw arrays):
    /// covariances stored in float32 (as some .npz
    /// files are) move eigenvalues by up to about 1e-7 sqrt(D) times the largest, below 1e-5 for D = 2048.
    /// </summary>
    public const double PsdTolerance = 1e-5;

    /// <summary>
    /// Square root of a symmetric positive semi-definite matrix (negative round-off eigenvalues clamped to 0; larger
    /// negative ones are an error naming <paramref name="which"/> covariance).
    /// </summary>
    internal static Tensor SqrtPsd(Tensor s, string which)
    {
        var (values, vectors) = linalg.eigh(s);
        FeatureStatistics.RequirePositiveSemiDefinite(values, which);
        using var zero = 0.0.ToScalar();
        var root = values.clamp_min(zero).sqrt();
        return Symmetrise((vectors * root.unsqueeze(0)).matmul(vectors.t()));
    }

    /// <summary>(m + m^T) / 2.</summary>
    private static Tensor Symmetrise(Tensor m)
    {
        using var half = 0.5.ToScalar();
        return m.add(m.t(), Int1) * half;
    }
}

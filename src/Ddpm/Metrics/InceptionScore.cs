using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Metrics;

/// <summary>
/// Inception Score (Salimans et al. 2016, as torch-fidelity computes it): the samples are cut into
/// <c>splits</c> consecutive chunks (chunk k is rows [k N / splits, (k+1) N / splits)); each chunk scores
/// exp(mean over rows of KL(p(y|x) || p(y))) with p(y) the chunk's mean prediction. Returns the mean and the
/// population standard deviation over the chunks.
/// </summary>
public static class InceptionScore
{
    public const int DefaultSplits = 10;

    /// <summary>From class probabilities (N, K): non-negative rows summing to 1 (within 1e-3).</summary>
    public static MetricEstimate FromProbabilities(double[,] probabilities, int splits = DefaultSplits)
    {
        ArgumentNullException.ThrowIfNull(probabilities);
        using var scope = NewDisposeScope();
        return FromProbabilities(tensor(probabilities, ScalarType.Float64), splits);
    }

    /// <summary>From logits (N, K): softmax over the classes first.</summary>
    public static MetricEstimate FromLogits(double[,] logits, int splits = DefaultSplits)
    {
        ArgumentNullException.ThrowIfNull(logits);
        using var scope = NewDisposeScope();
        return FromLogits(tensor(logits, ScalarType.Float64), splits);
    }

    /// <summary>From logits (N, K): softmax over the classes first (in float64).</summary>
    public static MetricEstimate FromLogits(Tensor logits, int splits = DefaultSplits)
    {
        ArgumentNullException.ThrowIfNull(logits);
        CheckShape(logits, splits, "logits");
        using var scope = NewDisposeScope();
        var p = logits.detach().to(CPU).to_type(ScalarType.Float64).softmax(1);
        return Score(p, splits);
    }

    /// <summary>From class probabilities (N, K).</summary>
    public static MetricEstimate FromProbabilities(Tensor probabilities, int splits = DefaultSplits)
    {
        ArgumentNullException.ThrowIfNull(probabilities);
        CheckShape(probabilities, splits, "probabilities");
        using var scope = NewDisposeScope();
        var p = probabilities.detach().to(CPU).to_type(ScalarType.Float64);
        // Scalars passed to TorchSharp are explicit and held for the whole call; see Ddpm.Runtime.HeldScalars.
        using var zero = 0.0.ToScalar();
        using var one = 1.0.ToScalar();
        if (p.lt(zero).any().item<bool>())
            throw new DdpmException("Inception Score: probabilities contain negative values");
        double worst = (p.sum(new long[] { 1 }) - one).abs().max().item<double>();
        if (!(worst <= 1e-3))
            throw new DdpmException($"Inception Score: probability rows must sum to 1 (largest deviation {worst:G4}); pass logits to FromLogits instead");
        return Score(p, splits);
    }

    private static void CheckShape(Tensor t, int splits, string what)
    {
        if (t.dim() != 2)
            throw new DdpmException($"Inception Score: {what} must be (N, K), got shape ({string.Join(", ", t.shape)})");
        if (splits < 1) throw new DdpmException($"Inception Score: splits must be at least 1, got {splits}");
        if (t.shape[0] < splits)
            throw new DdpmException($"Inception Score: {t.shape[0]} samples cannot be cut into {splits} splits");
    }

    private static MetricEstimate Score(Tensor p, int splits)
    {
        long n = p.shape[0];
        var scores = new double[splits];
        for (int k = 0; k < splits; k++)
        {
            using var inner = NewDisposeScope();
            long start = k * n / splits, end = (k + 1) * n / splits;
            var part = p.narrow(0, start, end - start);
            var py = part.mean(new long[] { 0 }, keepdim: true);
            // p log(p / py) with 0 log 0 = 0.
            using var zero = 0.0.ToScalar();
            var ratio = where(part.gt(zero), part / py, ones_like(part));
            var kl = (part * ratio.log()).sum(new long[] { 1 });
            scores[k] = Math.Exp(kl.mean().item<double>());
        }
        double mean = scores.Average();
        double std = Math.Sqrt(scores.Select(v => (v - mean) * (v - mean)).Average());
        return new MetricEstimate(mean, std);
    }
}

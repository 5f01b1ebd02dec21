using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>What samplers do to the predicted x_0: nothing, clipping, or dynamic thresholding.</summary>
public static class Thresholding
{
    /// <summary>Applies <see cref="SamplerOptions.Threshold"/> to a batch of predicted x_0 (batch first).</summary>
    public static Tensor Apply(Tensor x0, SamplerOptions options)
    {
        ArgumentNullException.ThrowIfNull(x0);
        ArgumentNullException.ThrowIfNull(options);
        return options.Threshold switch
        {
            X0Threshold.None => x0.alias(),
            X0Threshold.Clip => Clip(x0),
            X0Threshold.Dynamic => Dynamic(x0, options.DynamicThresholdQuantile, options.DynamicThresholdMax),
            _ => throw new DdpmException($"sampler: threshold {options.Threshold}: expected None, Clip or Dynamic"),
        };
    }

    // Scalars passed to TorchSharp are explicit and held for the whole call; see Ddpm.Runtime.HeldScalars.
    private static Tensor Clip(Tensor x0)
    {
        using var low = (-1.0).ToScalar();
        using var high = 1.0.ToScalar();
        return x0.clamp(low, high);
    }

    /// <summary>
    /// Dynamic thresholding (Saharia et al. 2022, section 2.3): per sample s = quantile(|x_0|, p) (linear
    /// interpolation) clamped to [1, max], then x_0 = clamp(x_0, -s, s) / s. With s = 1 it is plain clipping.
    /// </summary>
    public static Tensor Dynamic(Tensor x0, double quantile, double max)
    {
        ArgumentNullException.ThrowIfNull(x0);
        using var scope = torch.NewDisposeScope();
        long n = x0.shape[0];
        var flat = x0.reshape(n, -1);
        var q = torch.tensor((float)quantile, dtype: flat.dtype, device: flat.device);
        using var one = 1.0.ToScalar();
        var s = flat.abs().quantile(q, 1, true).clamp_min(one);
        if (!double.IsPositiveInfinity(max))
        {
            using var maxS = max.ToScalar();
            s = s.clamp_max(maxS);
        }
        var result = torch.minimum(torch.maximum(flat, -s), s) / s;
        return result.reshape(x0.shape).MoveToOuterDisposeScope();
    }
}

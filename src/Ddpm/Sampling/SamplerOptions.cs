namespace Ddpm.Sampling;

/// <summary>What a sampler does to the predicted x_0 at every step.</summary>
public enum X0Threshold
{
    /// <summary>Use the prediction as it is.</summary>
    None,
    /// <summary>Clip to [-1, 1] (the DDPM sampler's choice).</summary>
    Clip,
    /// <summary>
    /// Dynamic thresholding (Saharia et al. 2022, Imagen): per sample s = quantile(|x_0|, p) clamped to [1, max],
    /// then x_0 = clamp(x_0, -s, s) / s.
    /// </summary>
    Dynamic,
}

/// <summary>Options every sampler shares: seed, x_0 thresholding and the kept trajectory.</summary>
public sealed class SamplerOptions
{
    /// <summary>
    /// Seed of the sampler's own CPU generator; the same seed and shape give the same samples on any device and
    /// whatever the global RNG state. The generator draws x_T first, then (stochastic samplers only) one noise
    /// tensor per step.
    /// </summary>
    public long Seed { get; set; } = 0;

    /// <summary>What happens to the predicted x_0 at every step; <see cref="X0Threshold.Clip"/> by default.</summary>
    public X0Threshold Threshold { get; set; } = X0Threshold.Clip;

    /// <summary>
    /// Clip the predicted x_0 to [-1, 1] at every step: the same as <see cref="Threshold"/> =
    /// <see cref="X0Threshold.Clip"/> (true) or <see cref="X0Threshold.None"/> (false). Kept for older callers.
    /// </summary>
    public bool ClipDenoised
    {
        get => Threshold == X0Threshold.Clip;
        set => Threshold = value ? X0Threshold.Clip : X0Threshold.None;
    }

    /// <summary>The quantile p of |x_0| that dynamic thresholding uses (Imagen: 0.995).</summary>
    public double DynamicThresholdQuantile { get; set; } = 0.995;

    /// <summary>
    /// The largest s that dynamic thresholding divides by; infinity (the default) is Imagen's rule s = max(q, 1).
    /// </summary>
    public double DynamicThresholdMax { get; set; } = double.PositiveInfinity;

    /// <summary>
    /// 0 keeps no trajectory; k &gt; 0 keeps x_t and the predicted x_0 at every k-th visited step (counting the
    /// kept timesteps from the smallest, i.e. at original timestep t when all T steps run and t % k == 0),
    /// plus the final sample (as a frame with T = -1).
    /// </summary>
    public int KeepEvery { get; set; } = 0;


    /// <summary>Checks the options; throws a one-line <see cref="DdpmException"/> naming the bad one.</summary>
    public void Validate()
    {
        if (KeepEvery < 0)
            throw new DdpmException($"sampler: KeepEvery = {KeepEvery} must be >= 0");
        if (!Enum.IsDefined(Threshold))
            throw new DdpmException($"sampler: threshold {Threshold}: expected None, Clip or Dynamic");
        if (!(DynamicThresholdQuantile > 0 && DynamicThresholdQuantile <= 1))
            throw new DdpmException($"sampler: dynamic threshold quantile {DynamicThresholdQuantile}: expected a value in (0, 1]");
        if (!(DynamicThresholdMax >= 1))
            throw new DdpmException($"sampler: dynamic threshold max {DynamicThresholdMax}: expected a value >= 1");
    }
}

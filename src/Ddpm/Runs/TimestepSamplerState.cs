namespace Ddpm.Runs;

/// <summary>The saved state of the loss-aware timestep sampler (Training): enough to continue it exactly.</summary>
public sealed class TimestepSamplerState
{
    /// <summary>Losses recorded per timestep so far, at most the sampler's history length each.</summary>
    public int[] Counts { get; set; } = [];
    /// <summary>The last recorded losses per timestep, oldest first (Counts[t] valid entries in row t).</summary>
    public double[][] History { get; set; } = [];
}

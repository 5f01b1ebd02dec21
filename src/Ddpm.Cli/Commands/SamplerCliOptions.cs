using System.CommandLine;
using Ddpm.Sampling;

namespace Ddpm.Cli.Commands;

/// <summary>The x_0 thresholding options of the commands that sample.</summary>
public static class SamplerCliOptions
{
    public static Option<string> Threshold() => new("--threshold")
    {
        Description = "What to do with the predicted x_0 at every step: clip (to [-1, 1], the default), dynamic (Imagen's per-sample 99.5 % quantile) or none",
    };

    public static Option<double> DynamicMax() => new("--dynamic-max")
    {
        Description = "With --threshold dynamic: the largest scale s the predicted x_0 is divided by (default: no limit)",
        DefaultValueFactory = _ => double.PositiveInfinity,
    };

    /// <summary>Builds the options from --threshold, the older --no-clip and --dynamic-max; conflicting values are an error.</summary>
    public static SamplerOptions Build(string? threshold, bool noClip, double dynamicMax)
    {
        X0Threshold mode = X0Threshold.Clip;
        if (threshold is not null)
        {
            mode = threshold.Trim().ToLowerInvariant() switch
            {
                "clip" => X0Threshold.Clip,
                "dynamic" => X0Threshold.Dynamic,
                "none" => X0Threshold.None,
                _ => throw new DdpmException($"--threshold {threshold}: expected none, clip or dynamic"),
            };
            if (noClip && mode != X0Threshold.None)
                throw new DdpmException($"--no-clip and --threshold {threshold}: give one or the other");
        }
        else if (noClip)
            mode = X0Threshold.None;
        if (!(dynamicMax >= 1))
            throw new DdpmException($"--dynamic-max {dynamicMax}: expected a value >= 1");
        return new SamplerOptions { Threshold = mode, DynamicThresholdMax = dynamicMax };
    }
}

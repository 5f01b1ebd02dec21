using Ddpm.Configuration;
using Ddpm.Diffusion;

namespace Ddpm.Runs;

/// <summary>
/// Named sets of diffusion settings from the two reference papers. A recipe sets only the fields listed here; options
/// given explicitly afterwards override them. Optimisation settings (learning rate, batch size, EMA) are left alone.
/// </summary>
public static class TrainRecipes
{
    /// <summary>The recipe names.</summary>
    public static IReadOnlyList<string> Names { get; } = new[] { "ho2020", "improved" };

    /// <summary>
    /// ho2020 (Ho et al. 2020, CIFAR-10): linear schedule 1e-4 to 0.02 over T = 1000, eps prediction, fixedlarge variance,
    /// L_simple, uniform t.
    /// improved (Nichol and Dhariwal 2021): cosine schedule, eps prediction, learned_range variance, the hybrid loss with
    /// lambda = 0.001, uniform t. T is left as it is: the paper's headline runs used T = 4000 (timesteps 4000).
    /// </summary>
    public static void Apply(TrainConfig c, string name)
    {
        ArgumentNullException.ThrowIfNull(c);
        switch (name.Trim().ToLowerInvariant())
        {
            case "ho2020":
                c.Schedule = ScheduleKind.Linear;
                c.BetaStart = 1e-4;
                c.BetaEnd = 0.02;
                c.Timesteps = 1000;
                c.Prediction = PredictionType.Epsilon;
                c.Variance = VarianceType.FixedLarge;
                c.Loss = LossType.Simple;
                c.TimestepSampler = TimestepSamplerKind.Uniform;
                c.Recipe = "ho2020";
                break;
            case "improved":
                c.Schedule = ScheduleKind.Cosine;
                c.Prediction = PredictionType.Epsilon;
                c.Variance = VarianceType.LearnedRange;
                c.Loss = LossType.Hybrid;
                c.VlbWeight = GaussianDiffusion.DefaultVlbWeight;
                c.TimestepSampler = TimestepSamplerKind.Uniform;
                c.Recipe = "improved";
                break;
            default:
                throw DdpmException.ForSetting("recipe", $"{name}: expected {string.Join(" or ", Names)}");
        }
    }
}

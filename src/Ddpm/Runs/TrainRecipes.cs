using Ddpm.Configuration;
using Ddpm.Diffusion;

namespace Ddpm.Runs;

/// <summary>
/// Named sets of diffusion settings from the two reference papers. A recipe sets only the fields listed here; options
/// given explicitly afterwards override them. Optimisation settings (learning rate, batch size, EMA) are left alone.
/// Both undo what the project's default run changes in the objective (v-prediction, the min-SNR weighting), and
/// ho2020 draws its grids with the paper's ancestral sampler over all T steps.
/// </summary>
public static class TrainRecipes
{
    /// <summary>The recipe names.</summary>
    public static IReadOnlyList<string> Names { get; } = new[] { "ho2020", "improved" };

    /// <summary>
    /// ho2020 (Ho et al. 2020, CIFAR-10): linear schedule 1e-4 to 0.02 over T = 1000, eps prediction, fixedlarge variance,
    /// L_simple unweighted, uniform t; grids drawn with the ancestral sampler over all T steps.
    /// improved (Nichol and Dhariwal 2021): cosine schedule, eps prediction, learned_range variance, the hybrid loss with
    /// lambda = 0.001 (L_simple unweighted), uniform t. T is left as it is: the paper's headline runs used T = 4000 (timesteps 4000).
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
                EpsUnweightedUniform(c);
                c.Variance = VarianceType.FixedLarge;
                c.Loss = LossType.Simple;
                c.SampleSampler = Sampling.AncestralSampler.RegistryName;
                c.SampleSteps = 0;
                c.SampleSpacing = null;
                c.SampleThreshold = "clip";
                c.SampleEta = 0;
                c.Recipe = "ho2020";
                break;
            case "improved":
                c.Schedule = ScheduleKind.Cosine;
                EpsUnweightedUniform(c);
                c.Variance = VarianceType.LearnedRange;
                c.Loss = LossType.Hybrid;
                c.VlbWeight = GaussianDiffusion.DefaultVlbWeight;
                c.Recipe = "improved";
                break;
            default:
                throw DdpmException.ForSetting("recipe", $"{name}: expected {string.Join(" or ", Names)}");
        }
    }

    /// <summary>What both papers share and the project's default run changes: eps targets, L_simple unweighted, uniform t.</summary>
    private static void EpsUnweightedUniform(TrainConfig c)
    {
        c.Prediction = PredictionType.Epsilon;
        c.LossWeighting = LossWeightingKind.None;
        c.LossWeightGamma = null;
        c.TimestepSampler = TimestepSamplerKind.Uniform;
    }
}

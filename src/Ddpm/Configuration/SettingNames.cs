using Ddpm.Diffusion;

namespace Ddpm.Configuration;

/// <summary>How training draws t: uniformly, or loss-aware importance sampling (Nichol and Dhariwal 2021, section 3.3).</summary>
public enum TimestepSamplerKind
{
    Uniform,
    Importance,
}

/// <summary>
/// How the learning rate falls after its warm-up: not at all (the paper's constant rate), along a half cosine
/// (Loshchilov and Hutter 2017, without restarts) or along a straight line, to a final fraction of the base rate.
/// </summary>
public enum LearningRateDecay
{
    None,
    Cosine,
    Linear,
}

/// <summary>
/// The names of the enum-valued settings of a run: the first of each entry is written to config.json (the spelling
/// runs have always written), the others are read too (the spellings the parsers have always accepted).
/// </summary>
public static class SettingNames
{
    public static EnumNames<ScheduleKind> Schedule { get; } = new("schedule",
        (ScheduleKind.Linear, "linear", []),
        (ScheduleKind.Cosine, "cosine", []),
        (ScheduleKind.Sigmoid, "sigmoid", []));

    public static EnumNames<VarianceType> Variance { get; } = new("variance",
        (VarianceType.FixedLarge, "fixedlarge", []),
        (VarianceType.FixedSmall, "fixedsmall", []),
        (VarianceType.Learned, "learned", []),
        (VarianceType.LearnedRange, "learned-range", []));

    public static EnumNames<PredictionType> Prediction { get; } = new("prediction",
        (PredictionType.Epsilon, "eps", ["epsilon"]),
        (PredictionType.StartX, "x0", ["start"]),
        (PredictionType.Velocity, "v", ["velocity"]),
        (PredictionType.Mean, "mu", ["mean"]));

    public static EnumNames<LossType> Loss { get; } = new("loss",
        (LossType.Simple, "simple", ["mse"]),
        (LossType.Vlb, "vlb", ["kl"]),
        (LossType.Hybrid, "hybrid", []));

    public static EnumNames<TimestepSamplerKind> TimestepSampler { get; } = new("timestep_sampler",
        (TimestepSamplerKind.Uniform, "uniform", []),
        (TimestepSamplerKind.Importance, "importance", ["loss-aware"]));

    public static EnumNames<LossWeightingKind> LossWeighting { get; } = new("loss_weighting",
        (LossWeightingKind.None, "none", []),
        (LossWeightingKind.MinSnr, "min-snr", ["minsnr", "min_snr"]),
        (LossWeightingKind.P2, "p2", []));

    public static EnumNames<LearningRateDecay> LrDecay { get; } = new("lr_decay",
        (LearningRateDecay.None, "none", ["constant"]),
        (LearningRateDecay.Cosine, "cosine", []),
        (LearningRateDecay.Linear, "linear", []));
}

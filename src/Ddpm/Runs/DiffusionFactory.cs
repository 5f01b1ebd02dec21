using Ddpm.Diffusion;
using Ddpm.Models;

namespace Ddpm.Runs;

/// <summary>How training draws t (the samplers themselves are in Training).</summary>
public enum TimestepSamplerKind
{
    Uniform,
    Importance,
}

/// <summary>Builds the schedule and the diffusion from a configuration's names.</summary>
public static class DiffusionFactory
{
    public static ScheduleKind ParseSchedule(string name) => name.Trim().ToLowerInvariant() switch
    {
        "linear" => ScheduleKind.Linear,
        "cosine" => ScheduleKind.Cosine,
        "sigmoid" => ScheduleKind.Sigmoid,
        _ => throw new DdpmException($"--schedule {name}: expected linear, cosine or sigmoid"),
    };

    public static VarianceType ParseVariance(string name) => name.Trim().ToLowerInvariant() switch
    {
        "fixedlarge" or "fixed-large" => VarianceType.FixedLarge,
        "fixedsmall" or "fixed-small" => VarianceType.FixedSmall,
        "learned" => VarianceType.Learned,
        "learned-range" or "learnedrange" or "learned_range" => VarianceType.LearnedRange,
        _ => throw new DdpmException($"--variance {name}: expected fixedlarge, fixedsmall, learned or learned-range"),
    };

    public static PredictionType ParsePrediction(string name) => name.Trim().ToLowerInvariant() switch
    {
        "eps" or "epsilon" => PredictionType.Epsilon,
        "x0" or "start" => PredictionType.StartX,
        "v" or "velocity" => PredictionType.Velocity,
        "mu" or "mean" => PredictionType.Mean,
        _ => throw new DdpmException($"--prediction {name}: expected eps, x0, v or mu"),
    };

    public static LossType ParseLoss(string name) => name.Trim().ToLowerInvariant() switch
    {
        "simple" or "mse" => LossType.Simple,
        "vlb" or "kl" => LossType.Vlb,
        "hybrid" => LossType.Hybrid,
        _ => throw new DdpmException($"--loss {name}: expected simple, vlb or hybrid"),
    };

    public static TimestepSamplerKind ParseTimestepSampler(string name) => name.Trim().ToLowerInvariant() switch
    {
        "uniform" => TimestepSamplerKind.Uniform,
        "importance" or "loss-aware" => TimestepSamplerKind.Importance,
        _ => throw new DdpmException($"--timestep-sampler {name}: expected uniform or importance"),
    };

    /// <summary>Rejects a learned variance without a loss that trains it, and the hybrid loss without a learned variance.</summary>
    public static void CheckCombination(TrainConfig c)
    {
        var variance = ParseVariance(c.Variance);
        var loss = ParseLoss(c.Loss);
        bool learned = variance is VarianceType.Learned or VarianceType.LearnedRange;
        if (learned && loss == LossType.Simple)
            throw new DdpmException($"--variance {c.Variance} is learned, which L_simple cannot train: use --loss hybrid or --loss vlb");
        if (!learned && loss == LossType.Hybrid)
            throw new DdpmException($"--loss hybrid trains only a learned variance: use --variance learned-range or learned (or --loss simple)");
    }

    public static NoiseSchedule Schedule(TrainConfig c) => ParseSchedule(c.Schedule) switch
    {
        ScheduleKind.Linear => NoiseSchedule.Linear(c.Timesteps, c.BetaStart, c.BetaEnd),
        ScheduleKind.Sigmoid => NoiseSchedule.Sigmoid(c.Timesteps),
        _ => NoiseSchedule.Cosine(c.Timesteps),
    };

    public static GaussianDiffusion Diffusion(TrainConfig c) =>
        new(Schedule(c), ParseVariance(c.Variance), ParsePrediction(c.Prediction), ParseLoss(c.Loss), c.VlbWeight);

    /// <summary>
    /// Gives the network the output channels the variance needs: twice the data's channels when it is learned (an
    /// OutChannels of 0 is filled in), the data's otherwise. Throws when an explicit OutChannels disagrees.
    /// </summary>
    public static void ConfigureOutputChannels(UNetConfig model, TrainConfig c)
    {
        var variance = ParseVariance(c.Variance);
        bool learned = variance is VarianceType.Learned or VarianceType.LearnedRange;
        int expected = learned ? 2 * model.InChannels : model.InChannels;
        if (model.OutChannels == 0 && learned) model.OutChannels = expected;
        if (model.EffectiveOutChannels != expected)
            throw new DdpmException($"the model outputs {model.EffectiveOutChannels} channels but --variance {c.Variance} needs {expected} ({(learned ? "twice" : "the same as")} the {model.InChannels} of the data)");
    }
}

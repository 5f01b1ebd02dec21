using Ddpm.Diffusion;

namespace Ddpm.Training;

/// <summary>Builds the schedule and the diffusion from a configuration's names.</summary>
public static class DiffusionFactory
{
    public static ScheduleKind ParseSchedule(string name) => name.Trim().ToLowerInvariant() switch
    {
        "linear" => ScheduleKind.Linear,
        "cosine" => ScheduleKind.Cosine,
        _ => throw new DdpmException($"--schedule {name}: expected linear or cosine"),
    };

    public static VarianceType ParseVariance(string name) => name.Trim().ToLowerInvariant() switch
    {
        "fixedlarge" or "fixed-large" => VarianceType.FixedLarge,
        "fixedsmall" or "fixed-small" => VarianceType.FixedSmall,
        _ => throw new DdpmException($"--variance {name}: expected fixedlarge or fixedsmall"),
    };

    public static NoiseSchedule Schedule(TrainConfig c) => ParseSchedule(c.Schedule) switch
    {
        ScheduleKind.Linear => NoiseSchedule.Linear(c.Timesteps, c.BetaStart, c.BetaEnd),
        _ => NoiseSchedule.Cosine(c.Timesteps),
    };

    public static GaussianDiffusion Diffusion(TrainConfig c) => new(Schedule(c), ParseVariance(c.Variance));
}

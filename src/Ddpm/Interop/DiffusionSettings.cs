using Ddpm.Configuration;
using Ddpm.Diffusion;
using Ddpm.Runs;

namespace Ddpm.Interop;

/// <summary>
/// What a pretrained network's outputs mean: its noise schedule, T, what it predicts and the reverse-process variance,
/// plus the threshold its sampler applies to the predicted x_0. These travel with the weights when a model is imported,
/// exported or fine-tuned: the same weights under another schedule or parameterisation would be another model.
/// </summary>
public sealed record DiffusionSettings(ScheduleKind Schedule, int Timesteps, double BetaStart, double BetaEnd,
    VarianceType Variance, PredictionType Prediction, string Threshold)
{
    /// <summary>The configuration keys these settings fill in.</summary>
    public static IReadOnlyList<string> Keys { get; } = ["schedule", "timesteps", "beta_start", "beta_end", "variance", "prediction"];

    /// <summary>The paper's (Ho et al. 2020), which every original checkpoint was trained with.</summary>
    public static DiffusionSettings Ho2020 { get; } =
        new(ScheduleKind.Linear, 1000, 1e-4, 0.02, VarianceType.FixedLarge, PredictionType.Epsilon, "clip");

    /// <summary>The settings a run's configuration holds.</summary>
    public static DiffusionSettings Of(TrainConfig c)
    {
        ArgumentNullException.ThrowIfNull(c);
        return new(c.Schedule, c.Timesteps, c.BetaStart, c.BetaEnd, c.Variance, c.Prediction, c.SampleThreshold);
    }

    /// <summary>Writes these settings into <paramref name="c"/> (the threshold into both the grids' and the evaluation's).</summary>
    public void ApplyTo(TrainConfig c)
    {
        ArgumentNullException.ThrowIfNull(c);
        c.Schedule = Schedule;
        c.Timesteps = Timesteps;
        c.BetaStart = BetaStart;
        c.BetaEnd = BetaEnd;
        c.Variance = Variance;
        c.Prediction = Prediction;
        c.SampleThreshold = Threshold;
        c.EvalThreshold = Threshold;
    }

    /// <summary>One line for messages, e.g. "linear schedule 0.0001 to 0.02, T = 1000, predicts eps, variance fixedlarge".</summary>
    public string Describe() =>
        (Schedule == ScheduleKind.Linear ? FormattableString.Invariant($"linear schedule {BetaStart} to {BetaEnd}") : SettingNames.Schedule.Name(Schedule) + " schedule")
        + $", T = {Timesteps}, predicts {SettingNames.Prediction.Name(Prediction)}, variance {SettingNames.Variance.Name(Variance)}";
}

using Ddpm.Configuration;

namespace Ddpm.Training;

/// <summary>The paper's schedule: linear warm-up from 0 to the base rate, then constant.</summary>
public static class LearningRate
{
    /// <summary>Rate for the update at 0-based <paramref name="step"/>: base * min(1, (step + 1) / warmup).</summary>
    public static double At(double baseRate, long warmupSteps, long step) =>
        warmupSteps <= 0 ? baseRate : baseRate * Math.Min(1.0, (step + 1) / (double)warmupSteps);
}

/// <summary>
/// The rate of every update as a function of its step alone (so a resumed run continues exactly): the paper's linear
/// warm-up over steps 0..W-1, then a decay from the base rate at step W to <c>FinalRatio</c> x base at step
/// <c>DecaySteps</c> = D, constant after (from the end of the warm-up when D &lt;= W). With progress p = (step - W) / (D - W), the factor is
/// r + (1 - r) (1 + cos(pi p)) / 2 for the cosine decay and r + (1 - r) (1 - p) for the linear one; the last update of
/// a run whose D is its step count (step D - 1) still moves the weights.
/// </summary>
public sealed record LearningRateSchedule(double BaseRate, long WarmupSteps, LearningRateDecay Decay = LearningRateDecay.None,
    long DecaySteps = 0, double FinalRatio = 0)
{
    /// <summary>A run's schedule; a decay whose span is not set spans the run's steps (<see cref="Trainer.Resolve(Runs.TrainConfig, Data.ImageDataset)"/> sets it when a run starts).</summary>
    public static LearningRateSchedule Of(Runs.TrainConfig config) => new(config.LearningRate, config.WarmupSteps, config.LrDecay,
        config.LrDecaySteps ?? config.Steps, config.LrFinalRatio);

    /// <summary>Rate for the update at 0-based <paramref name="step"/>.</summary>
    public double At(long step)
    {
        double warm = LearningRate.At(BaseRate, WarmupSteps, step);
        if (Decay == LearningRateDecay.None || step < WarmupSteps) return warm;
        // A span that ends within the warm-up (a run shorter than its warm-up, extended) has decayed by then.
        double progress = DecaySteps <= WarmupSteps ? 1.0 : Math.Clamp((step - WarmupSteps) / (double)(DecaySteps - WarmupSteps), 0.0, 1.0);
        double fall = Decay switch
        {
            LearningRateDecay.Cosine => (1 + Math.Cos(Math.PI * progress)) / 2,
            LearningRateDecay.Linear => 1 - progress,
            _ => throw new ArgumentOutOfRangeException(nameof(Decay), Decay, null),
        };
        return BaseRate * (FinalRatio + (1 - FinalRatio) * fall);
    }
}

namespace Ddpm.Training;

/// <summary>The paper's schedule: linear warm-up from 0 to the base rate, then constant.</summary>
public static class LearningRate
{
    /// <summary>Rate for the update at 0-based <paramref name="step"/>: base * min(1, (step + 1) / warmup).</summary>
    public static double At(double baseRate, long warmupSteps, long step) =>
        warmupSteps <= 0 ? baseRate : baseRate * Math.Min(1.0, (step + 1) / (double)warmupSteps);
}

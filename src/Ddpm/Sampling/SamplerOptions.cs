using System.Globalization;
using Ddpm.Diffusion;

namespace Ddpm.Sampling;

/// <summary>What a sampler does to the predicted x_0 at every step.</summary>
public enum X0Threshold
{
    /// <summary>Use the prediction as it is.</summary>
    None,
    /// <summary>Clip to [-1, 1] (the DDPM sampler's choice).</summary>
    Clip,
    /// <summary>
    /// Dynamic thresholding (Saharia et al. 2022, Imagen): per sample s = quantile(|x_0|, p) clamped to [1, max],
    /// then x_0 = clamp(x_0, -s, s) / s.
    /// </summary>
    Dynamic,
}

/// <summary>How <see cref="SamplerOptions.Steps"/> timesteps are chosen out of T (see <see cref="TimestepSelection"/>).</summary>
public enum TimestepSpacing
{
    /// <summary>Evenly spaced in t, both ends kept, rounded (improved-diffusion's respacing).</summary>
    Even,
    /// <summary>Evenly spaced in the half log-SNR lambda (DPM-Solver's "logSNR").</summary>
    LogSnr,
    /// <summary>diffusers' "linspace".</summary>
    Linspace,
    /// <summary>diffusers' "leading".</summary>
    Leading,
    /// <summary>diffusers' "trailing".</summary>
    Trailing,
    /// <summary>Karras et al.'s sigmas (rho = 7) between the schedule's largest and smallest sigma.</summary>
    Karras,
}

/// <summary>
/// What every sampler's options hold: which timesteps it visits and what it does to the predicted x_0. Each sampler
/// derives its own record (<see cref="AncestralOptions"/>, <see cref="DdimOptions"/>, <see cref="DpmSolverOptions"/>)
/// with the settings only it has. How one run draws its noise and where it starts is not an option of the sampler but
/// of the run (<see cref="SamplingRun"/>).
/// </summary>
public abstract record SamplerOptions
{
    /// <summary>Number of steps, chosen out of T as <see cref="Spacing"/> says; null takes the sampler's default.</summary>
    public int? Steps { get; init; }

    /// <summary>How the steps are spaced; null takes the sampler's default.</summary>
    public TimestepSpacing? Spacing { get; init; }

    /// <summary>An explicit list of 0-based timesteps to visit (any order, each once); instead of <see cref="Steps"/>.</summary>
    public IReadOnlyList<int>? Timesteps { get; init; }

    /// <summary>What happens to the predicted x_0 at every step; <see cref="X0Threshold.Clip"/> by default.</summary>
    public X0Threshold Threshold { get; init; } = X0Threshold.Clip;

    /// <summary>The quantile p of |x_0| that dynamic thresholding uses, in (0, 1] (Imagen and diffusers: 0.995).</summary>
    public double DynamicThresholdQuantile { get; init; } = 0.995;

    /// <summary>
    /// The largest s that dynamic thresholding divides by, at least 1; infinity (the default) is Imagen's rule
    /// s = max(q, 1) (diffusers calls it sample_max_value).
    /// </summary>
    public double DynamicThresholdMax { get; init; } = double.PositiveInfinity;

    /// <summary>Checks the settings every sampler shares; one-line <see cref="DdpmException"/> naming the setting.</summary>
    public virtual void Validate()
    {
        if (Timesteps is not null && Steps is not null) throw new DdpmException("sampler: steps and timesteps: give one or the other");
        if (Timesteps is not null && Spacing is not null) throw new DdpmException("sampler: spacing and timesteps: give one or the other");
        if (Spacing is TimestepSpacing sp && !Enum.IsDefined(sp)) throw new DdpmException($"sampler: spacing {sp}: unknown");
        if (!Enum.IsDefined(Threshold))
            throw new DdpmException($"sampler: threshold {Threshold}: expected None, Clip or Dynamic");
        if (!(DynamicThresholdQuantile > 0 && DynamicThresholdQuantile <= 1))
            throw new DdpmException($"sampler: dynamic_threshold_quantile {Num(DynamicThresholdQuantile)}: expected a value in (0, 1]");
        if (!(DynamicThresholdMax >= 1))
            throw new DdpmException($"sampler: dynamic_threshold_max {Num(DynamicThresholdMax)}: expected a value >= 1");
    }

    /// <summary>
    /// The timesteps to visit, descending: the explicit list, or <see cref="Steps"/> (default
    /// <paramref name="defaultSteps"/>, at most T) spaced as <see cref="Spacing"/> says (default
    /// <paramref name="defaultSpacing"/>). <paramref name="endsAtSigmaZero"/> selects DPM-Solver's variant of diffusers'
    /// linspace and leading spacings (see <see cref="Spaced"/>). Validates first.
    /// </summary>
    public int[] ResolveTimesteps(NoiseSchedule schedule, int defaultSteps, TimestepSpacing defaultSpacing, bool endsAtSigmaZero = false)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        Validate();
        var ascending = Timesteps is not null
            ? TimestepSelection.FromList(Timesteps, schedule.Timesteps)
            : Spaced(Spacing ?? defaultSpacing, schedule, Steps ?? Math.Min(defaultSteps, schedule.Timesteps), endsAtSigmaZero);
        return ascending.Reverse().ToArray();
    }

    /// <summary>
    /// <paramref name="count"/> timesteps spaced as <paramref name="spacing"/> says, ascending (<see cref="TimestepSelection"/>).
    /// <paramref name="endsAtSigmaZero"/> picks DPM-Solver's variants of diffusers' linspace and leading.
    /// </summary>
    public static int[] Spaced(TimestepSpacing spacing, NoiseSchedule schedule, int count, bool endsAtSigmaZero = false)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        int total = schedule.Timesteps;
        return spacing switch
        {
            TimestepSpacing.Even => TimestepSelection.EvenlySpaced(total, count),
            TimestepSpacing.LogSnr => TimestepSelection.LogSnrSpaced(schedule, count),
            TimestepSpacing.Linspace => TimestepSelection.Linspace(total, count, endsAtSigmaZero),
            TimestepSpacing.Leading => TimestepSelection.Leading(total, count, endsAtSigmaZero),
            TimestepSpacing.Trailing => TimestepSelection.Trailing(total, count),
            TimestepSpacing.Karras => TimestepSelection.KarrasSpaced(schedule, count),
            _ => throw new DdpmException($"sampler: spacing {spacing}: unknown"),
        };
    }

    /// <summary>"k of T steps (how), threshold ..." for <see cref="ISampler.Describe"/>.</summary>
    public string DescribeCommon(NoiseSchedule schedule, int visited, TimestepSpacing defaultSpacing)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        var how = Timesteps is not null ? "listed" : SpacingName(Spacing ?? defaultSpacing);
        var threshold = Threshold.ToString().ToLowerInvariant();
        if (Threshold == X0Threshold.Dynamic)
            threshold += $" (p {Num(DynamicThresholdQuantile)}" + (double.IsPositiveInfinity(DynamicThresholdMax) ? ")" : $", max {Num(DynamicThresholdMax)})");
        return $"{visited} of {schedule.Timesteps} steps ({how}), threshold {threshold}";
    }

    /// <summary>The lower-case name of a spacing: even, logsnr, linspace, leading, trailing or karras.</summary>
    public static string SpacingName(TimestepSpacing spacing) => spacing.ToString().ToLowerInvariant();

    /// <summary>A spacing by name (any case; "log-snr", "linear" and "uniform" are accepted too).</summary>
    public static TimestepSpacing ParseSpacing(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant() switch
        {
            "even" or "linear" or "uniform" => TimestepSpacing.Even,
            "logsnr" or "log-snr" => TimestepSpacing.LogSnr,
            "linspace" => TimestepSpacing.Linspace,
            "leading" => TimestepSpacing.Leading,
            "trailing" => TimestepSpacing.Trailing,
            "karras" => TimestepSpacing.Karras,
            _ => throw new DdpmException($"spacing {name}: expected even, logsnr, linspace, leading, trailing or karras"),
        };
    }

    /// <summary>A threshold by name: none, clip or dynamic (any case).</summary>
    public static X0Threshold ParseThreshold(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant() switch
        {
            "clip" => X0Threshold.Clip,
            "dynamic" => X0Threshold.Dynamic,
            "none" => X0Threshold.None,
            _ => throw new DdpmException($"threshold {name}: expected none, clip or dynamic"),
        };
    }

    internal static string Num(double v) => v.ToString(CultureInfo.InvariantCulture);
}

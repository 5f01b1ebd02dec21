using System.Globalization;
using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>The samplers.</summary>
public enum SamplerKind
{
    /// <summary>DDPM's ancestral sampler, over all T steps or respaced to fewer.</summary>
    Ddpm,
    /// <summary>DDIM with eta (0 = deterministic).</summary>
    Ddim,
    /// <summary>DPM-Solver++(2M), deterministic.</summary>
    DpmSolver,
}

/// <summary>How <see cref="SamplerSettings.Steps"/> timesteps are chosen out of T.</summary>
public enum TimestepSpacing
{
    /// <summary>Evenly spaced in t (<see cref="TimestepSelection.EvenlySpaced"/>).</summary>
    Even,
    /// <summary>Evenly spaced in the half log-SNR lambda (<see cref="TimestepSelection.LogSnrSpaced"/>).</summary>
    LogSnr,
}

/// <summary>Which sampler runs, and over which timesteps.</summary>
public sealed record SamplerSettings
{
    /// <summary>The sampler; DDPM's ancestral sampler by default.</summary>
    public SamplerKind Kind { get; init; } = SamplerKind.Ddpm;

    /// <summary>
    /// Number of steps, chosen out of the T timesteps as <see cref="Spacing"/> says; null takes
    /// <see cref="DefaultSteps"/>. Give either this or <see cref="Timesteps"/>.
    /// </summary>
    public int? Steps { get; init; }

    /// <summary>
    /// How the steps are spaced; null takes <see cref="DefaultSpacing"/>: even in t for DDPM and DDIM, even in log-SNR
    /// for DPM-Solver++ (as Lu et al. advise for low-resolution images; on the 2-D toy it halves the gap to DDPM at 10
    /// steps).
    /// </summary>
    public TimestepSpacing? Spacing { get; init; }

    /// <summary>An explicit list of 0-based timesteps to visit (any order, each once); overrides <see cref="Steps"/>.</summary>
    public IReadOnlyList<int>? Timesteps { get; init; }

    /// <summary>DDIM's eta in [0, 1]: 0 is deterministic, 1 has the ancestral sampler's (fixedsmall) variance.</summary>
    public double Eta { get; init; }

    /// <summary>The steps a sampler takes when none are asked for: T for DDPM, 50 for DDIM, 20 for DPM-Solver++ (at most T).</summary>
    public static int DefaultSteps(SamplerKind kind, int timesteps) => kind switch
    {
        SamplerKind.Ddim => Math.Min(50, timesteps),
        SamplerKind.DpmSolver => Math.Min(20, timesteps),
        _ => timesteps,
    };

    /// <summary>Even in log-SNR for DPM-Solver++, even in t otherwise.</summary>
    public static TimestepSpacing DefaultSpacing(SamplerKind kind) =>
        kind == SamplerKind.DpmSolver ? TimestepSpacing.LogSnr : TimestepSpacing.Even;

    /// <summary>"even" or "logsnr", any case.</summary>
    public static TimestepSpacing ParseSpacing(string name) => name.Trim().ToLowerInvariant() switch
    {
        "even" or "linear" or "uniform" => TimestepSpacing.Even,
        "logsnr" or "log-snr" => TimestepSpacing.LogSnr,
        _ => throw DdpmException.ForSetting("spacing", $"{name}: expected even or logsnr"),
    };

    /// <summary>"ddpm", "ddim" or "dpm-solver" (also "dpmsolver", "dpm-solver++"), any case.</summary>
    public static SamplerKind ParseKind(string name) => name.Trim().ToLowerInvariant() switch
    {
        "ddpm" or "ancestral" => SamplerKind.Ddpm,
        "ddim" => SamplerKind.Ddim,
        "dpm-solver" or "dpmsolver" or "dpm-solver++" or "dpmsolver++" or "dpm" => SamplerKind.DpmSolver,
        _ => throw DdpmException.ForSetting("sampler", $"{name}: expected ddpm, ddim or dpm-solver"),
    };

    /// <summary>The command-line name of a sampler.</summary>
    public static string Name(SamplerKind kind) => kind switch
    {
        SamplerKind.Ddim => "ddim",
        SamplerKind.DpmSolver => "dpm-solver",
        _ => "ddpm",
    };

    /// <summary>The timesteps to visit for a schedule of T steps, ascending; checks the settings (one-line errors).</summary>
    public int[] ResolveTimesteps(NoiseSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        int timesteps = schedule.Timesteps;
        if (Eta != 0 && Kind != SamplerKind.Ddim)
            throw DdpmException.ForSetting("eta", $"{Eta.ToString(CultureInfo.InvariantCulture)}: eta applies to sampler ddim only");
        if (Kind == SamplerKind.Ddim) DdimSampler.CheckEta(Eta);
        if (Timesteps is not null)
        {
            if (Steps is not null) throw DdpmException.ForSetting("sample_steps", "and timestep_list: give one or the other");
            if (Spacing is not null) throw DdpmException.ForSetting("spacing", "and timestep_list: give one or the other");
            return TimestepSelection.FromList(Timesteps, timesteps);
        }
        int steps = Steps ?? DefaultSteps(Kind, timesteps);
        return (Spacing ?? DefaultSpacing(Kind)) == TimestepSpacing.LogSnr
            ? TimestepSelection.LogSnrSpaced(schedule, steps)
            : TimestepSelection.EvenlySpaced(timesteps, steps);
    }

    /// <summary>A one-line description, e.g. "ddim, 50 of 1000 steps (even), eta 0"; checks the settings.</summary>
    public string Describe(NoiseSchedule schedule)
    {
        int n = ResolveTimesteps(schedule).Length;
        var eta = Kind == SamplerKind.Ddim ? $", eta {Eta.ToString(CultureInfo.InvariantCulture)}" : "";
        var how = Timesteps is not null ? "listed" : (Spacing ?? DefaultSpacing(Kind)) == TimestepSpacing.LogSnr ? "logsnr" : "even";
        return $"{Name(Kind)}, {n} of {schedule.Timesteps} steps ({how}){eta}";
    }
}

/// <summary>Runs any sampler by its settings.</summary>
public static class Sampler
{
    /// <summary>
    /// Draws samples of the given shape with the chosen sampler over the chosen timesteps. The ancestral sampler over
    /// all T steps is exactly <see cref="AncestralSampler.Sample(GaussianDiffusion, nn.Module{Tensor, Tensor, Tensor}, long[], SamplerOptions, Device?, IProgress{int}?, CancellationToken)"/>.
    /// Progress reports steps done out of the number of timesteps visited.
    /// </summary>
    public static SampleResult Sample(
        GaussianDiffusion diffusion,
        nn.Module<Tensor, Tensor, Tensor> model,
        long[] shape,
        SamplerSettings settings,
        SamplerOptions options,
        Device? device = null,
        IProgress<int>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        ArgumentNullException.ThrowIfNull(settings);
        var timesteps = settings.ResolveTimesteps(diffusion.Schedule);
        return settings.Kind switch
        {
            SamplerKind.Ddpm when timesteps.Length == diffusion.Timesteps =>
                AncestralSampler.Sample(diffusion, model, shape, options, device, progress, cancellationToken),
            SamplerKind.Ddpm => AncestralSampler.Sample(diffusion, model, shape, timesteps, options, device, progress, cancellationToken),
            SamplerKind.Ddim => DdimSampler.Sample(diffusion, model, shape, timesteps, settings.Eta, options, device, progress, cancellationToken),
            SamplerKind.DpmSolver => DpmSolverSampler.Sample(diffusion, model, shape, timesteps, options, device, progress, cancellationToken),
            _ => throw new DdpmException($"sampler {settings.Kind}: expected Ddpm, Ddim or DpmSolver"),
        };
    }
}

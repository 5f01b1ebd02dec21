using System.CommandLine;
using System.Globalization;
using Ddpm.Sampling;

namespace Ddpm.Cli.Commands;

/// <summary>
/// The sampler option group of every command that samples (sample, fid, distance, interpolate): the sampler by its
/// registry name, its timesteps, x_0 thresholding, and each built-in sampler's own settings. Builds an
/// <see cref="ISampler"/> from the registry.
/// </summary>
public sealed class SamplerCliOptions
{
    public Option<string> Sampler { get; }
    public Option<int?> Steps { get; }
    public Option<string> Timesteps { get; } = new("--timestep-list") { Description = "Explicit 0-based timesteps to visit, comma-separated (e.g. 0,250,500,750,999); instead of --sample-steps" };
    public Option<string> Spacing { get; } = new("--spacing")
    {
        Description = "How --sample-steps are spread over T: even (in t; default for ddpm and ddim), logsnr (even in log-SNR; default for dpm-solver), " +
            "linspace, leading or trailing (diffusers' definitions) or karras (Karras et al.'s sigmas, rho 7)",
    };
    public Option<string> Threshold { get; } = new("--threshold")
    {
        Description = "What to do with the predicted x_0 at every step: clip (to [-1, 1], the default), dynamic (Imagen's per-sample quantile) or none",
    };
    public Option<double> DynamicQuantile { get; } = new("--dynamic-quantile")
    {
        Description = "With --threshold dynamic: the quantile of |x_0| each sample is scaled by (diffusers' dynamic_thresholding_ratio)",
        DefaultValueFactory = _ => 0.995,
    };
    public Option<double> DynamicMax { get; } = new("--dynamic-max")
    {
        Description = "With --threshold dynamic: the largest scale s the predicted x_0 is divided by (default: no limit)",
        DefaultValueFactory = _ => double.PositiveInfinity,
    };
    public Option<bool> NoClip { get; } = new("--no-clip") { Description = "Do not clip the predicted x_0 (the same as --threshold none)" };
    public Option<double?> Eta { get; } = new("--eta") { Description = "DDIM's eta in [0, 1]: 0 deterministic (default), 1 the ancestral sampler's variance" };
    public Option<string> DdimFinal { get; } = new("--ddim-final")
    {
        Description = "Where DDIM's last step lands: one (alpha_bar = 1, the default) or alpha-bar-0 (diffusers' set_alpha_to_one=False)",
    };
    public Option<bool> DdimRawEps { get; } = new("--ddim-raw-eps")
    {
        Description = "DDIM with a threshold: keep the model's raw eps instead of re-deriving it from the thresholded x_0 (Song et al.'s code)",
    };
    public Option<string> DpmFinal { get; } = new("--dpm-final")
    {
        Description = "Where DPM-Solver++'s last step lands: zero (sigma = 0, the default) or sigma-min (the schedule's smallest sigma)",
    };
    public Option<bool> DpmSecondOrderFinal { get; } = new("--dpm-second-order-final")
    {
        Description = "DPM-Solver++: keep the second order in the last steps (by default they drop to first order)",
    };

    /// <param name="defaultSampler">The sampler when --sampler is not given.</param>
    /// <param name="samplerHelp">Help of --sampler for this command (null: the list of registered samplers).</param>
    public SamplerCliOptions(string defaultSampler = AncestralSampler.RegistryName, string? samplerHelp = null)
    {
        Sampler = new Option<string>("--sampler")
        {
            Description = samplerHelp ?? $"The sampler: {string.Join(", ", SamplerRegistry.Names.Select(n => $"{n} ({SamplerRegistry.Description(n)})"))}",
            DefaultValueFactory = _ => defaultSampler,
        };
        Steps = new Option<int?>("--sample-steps")
        {
            Description = $"Denoising steps, spread over T as --spacing says (default: T for ddpm, {DdimSampler.DefaultSteps} for ddim, {DpmSolverSampler.DefaultSteps} for dpm-solver)",
        };
    }

    public IEnumerable<Option> All => new Option[]
    {
        Sampler, Steps, Spacing, Timesteps, Eta, Threshold, DynamicQuantile, DynamicMax, NoClip, DdimFinal, DdimRawEps, DpmFinal, DpmSecondOrderFinal,
    };

    public void AddTo(Command cmd)
    {
        foreach (var o in All) cmd.Options.Add(o);
        // The names these had before: each now means one thing in every command (steps: train's optimiser steps; timesteps: T).
        cmd.Options.Add(SettingOptions.Renamed("--steps", "--sample-steps", "the denoising steps; --steps is train's optimizer steps"));
        cmd.Options.Add(SettingOptions.Renamed("--timesteps", "--timestep-list", "the explicit list; --timesteps is T elsewhere"));
    }

    /// <summary>
    /// The sampler the options describe (checked against the schedule later, by <see cref="ISampler.Describe"/>).
    /// A sampler's own flag given with another sampler is an error.
    /// </summary>
    public ISampler Build(ParseResult parse)
    {
        var sampler = InFlags(() => SamplerRegistry.Create(parse.GetValue(Sampler)!));
        var list = parse.GetValue(Timesteps);
        var threshold = ThresholdMode(parse.GetValue(Threshold), parse.GetValue(NoClip));
        var options = sampler.Options with
        {
            Steps = parse.GetValue(Steps),
            Spacing = parse.GetValue(Spacing) is string sp ? InFlags(() => SamplerOptions.ParseSpacing(sp)) : null,
            Timesteps = list is null ? null : ParseList(list),
            Threshold = threshold,
            DynamicThresholdQuantile = parse.GetValue(DynamicQuantile),
            DynamicThresholdMax = parse.GetValue(DynamicMax),
        };
        if (!(options.DynamicThresholdQuantile > 0 && options.DynamicThresholdQuantile <= 1))
            throw new DdpmException($"--dynamic-quantile {Num(options.DynamicThresholdQuantile)}: expected a value in (0, 1]");
        if (!(options.DynamicThresholdMax >= 1))
            throw new DdpmException($"--dynamic-max {Num(options.DynamicThresholdMax)}: expected a value >= 1");
        if (options.Timesteps is not null && options.Steps is not null) throw new DdpmException("--sample-steps and --timestep-list: give one or the other");
        if (options.Timesteps is not null && options.Spacing is not null) throw new DdpmException("--spacing and --timestep-list: give one or the other");

        double? eta = parse.GetValue(Eta);
        string? ddimFinal = parse.GetValue(DdimFinal), dpmFinal = parse.GetValue(DpmFinal);
        bool rawEps = parse.GetValue(DdimRawEps), secondOrder = parse.GetValue(DpmSecondOrderFinal);
        if (options is DdimOptions ddim)
        {
            if (eta is double e && !(e >= 0 && e <= 1))
                throw new DdpmException($"--eta {Num(e)}: expected a value in [0, 1] (0 = deterministic DDIM, 1 = DDPM's variance)");
            options = ddim with
            {
                Eta = eta ?? ddim.Eta,
                FinalStep = ddimFinal is null ? ddim.FinalStep : ParseDdimFinal(ddimFinal),
                EpsFromThresholdedX0 = !rawEps,
            };
        }
        else if (eta is not null || ddimFinal is not null || rawEps)
            throw new DdpmException($"{(eta is not null ? "--eta" : ddimFinal is not null ? "--ddim-final" : "--ddim-raw-eps")} applies to --sampler ddim only");
        if (options is DpmSolverOptions dpm)
            options = dpm with
            {
                FinalStep = dpmFinal is null ? dpm.FinalStep : ParseDpmFinal(dpmFinal),
                LowerOrderFinal = !secondOrder,
            };
        else if (dpmFinal is not null || secondOrder)
            throw new DdpmException($"{(dpmFinal is not null ? "--dpm-final" : "--dpm-second-order-final")} applies to --sampler dpm-solver only");
        return sampler.With(options);
    }

    /// <summary>
    /// <see cref="ISampler.Describe"/>, which checks the settings against the schedule; its errors name the CLI flags.
    /// </summary>
    public static string Describe(ISampler sampler, Diffusion.NoiseSchedule schedule) => InFlags(() => sampler.Describe(schedule));

    // The library's errors name the setting ("steps 13: ..."); the CLI's name the flag that set it.
    private static readonly (string Setting, string Flag)[] Flags =
    {
        ("sampler: steps and timesteps", "--sample-steps and --timestep-list"), ("sampler: spacing and timesteps", "--spacing and --timestep-list"),
        ("steps ", "--sample-steps "), ("timesteps:", "--timestep-list:"), ("spacing ", "--spacing "), ("sampler ", "--sampler "),
        ("threshold ", "--threshold "), ("ddim: eta ", "--eta "),
    };

    private static T InFlags<T>(Func<T> f)
    {
        try { return f(); }
        catch (DdpmException e)
        {
            foreach (var (setting, flag) in Flags)
                if (e.Message.StartsWith(setting, StringComparison.Ordinal))
                    throw new DdpmException(flag + e.Message[setting.Length..]);
            throw;
        }
    }

    private static X0Threshold ThresholdMode(string? threshold, bool noClip)
    {
        if (threshold is null) return noClip ? X0Threshold.None : X0Threshold.Clip;
        X0Threshold mode;
        try { mode = SamplerOptions.ParseThreshold(threshold); }
        catch (DdpmException) { throw new DdpmException($"--threshold {threshold}: expected none, clip or dynamic"); }
        if (noClip && mode != X0Threshold.None)
            throw new DdpmException($"--no-clip and --threshold {threshold}: give one or the other");
        return mode;
    }

    private static int[] ParseList(string text)
    {
        var values = new List<int>();
        foreach (var p in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v))
                throw new DdpmException($"--timestep-list: '{p}' is not an integer (expected a comma-separated list such as 0,500,999)");
            values.Add(v);
        }
        if (values.Count == 0) throw new DdpmException("--timestep-list: the list is empty");
        return values.ToArray();
    }

    private static DdimFinalStep ParseDdimFinal(string name) => name.Trim().ToLowerInvariant() switch
    {
        "one" or "1" => DdimFinalStep.One,
        "alpha-bar-0" or "alpha_bar_0" or "alphabarzero" => DdimFinalStep.AlphaBarZero,
        _ => throw new DdpmException($"--ddim-final {name}: expected one or alpha-bar-0"),
    };

    private static DpmFinalStep ParseDpmFinal(string name) => name.Trim().ToLowerInvariant() switch
    {
        "zero" or "0" => DpmFinalStep.Zero,
        "sigma-min" or "sigma_min" => DpmFinalStep.SigmaMin,
        _ => throw new DdpmException($"--dpm-final {name}: expected zero or sigma-min"),
    };

    private static string Num(double v) => v.ToString(CultureInfo.InvariantCulture);
}

using System.Globalization;
using System.Text.Json.Nodes;
using Ddpm.Configuration;
using Ddpm.Diffusion;

namespace Ddpm.Interop;

/// <summary>
/// diffusers' scheduler configuration (<c>scheduler/scheduler_config.json</c>) to and from <see cref="DiffusionSettings"/>.
/// Read: the keys that fix what the network's output means (betas, T, prediction type, variance type, clipping); keys
/// that only choose how a sampler spaces fewer steps (timestep_spacing, steps_offset, ...) are inference options of
/// diffusers' samplers and are left to this project's sampler options. Written: a <c>DDPMScheduler</c>.
/// </summary>
public static class DiffusersScheduler
{
    /// <summary>The betas of diffusers' "squaredcos_cap_v2" are those of the project's cosine schedule (s = 0.008, capped at 0.999).</summary>
    private const string CosineName = "squaredcos_cap_v2";

    public static DiffusionSettings FromJson(JsonObject json, string where)
    {
        ArgumentNullException.ThrowIfNull(json);
        DdpmException Bad(string key, string problem) => new($"{where}: {key} {json[key]?.ToJsonString() ?? "null"}: {problem}");
        double Number(string key, double fallback) => json[key] switch
        {
            null => fallback,
            JsonValue v when v.TryGetValue<double>(out var d) && double.IsFinite(d) => d,
            _ => throw Bad(key, "expected a number"),
        };
        string Text(string key, string fallback) => json[key] switch
        {
            null => fallback,
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            _ => throw Bad(key, "expected a name"),
        };
        bool Flag(string key, bool fallback) => json[key] switch
        {
            null => fallback,
            JsonValue v when v.TryGetValue<bool>(out var b) => b,
            _ => throw Bad(key, "expected true or false"),
        };

        // num_train_timesteps; schedulers saved by diffusers 0.1 (GaussianDDPMScheduler) called it timesteps.
        string tKey = json.ContainsKey("num_train_timesteps") ? "num_train_timesteps" : json.ContainsKey("timesteps") ? "timesteps" : "num_train_timesteps";
        double t = Number(tKey, 1000);
        if (t != Math.Floor(t) || t < 1 || t > 100_000) throw Bad(tKey, "expected an integer between 1 and 100000");
        if (json["trained_betas"] is not null) throw Bad("trained_betas", "explicit betas cannot be expressed by the project's schedule settings (linear, cosine, sigmoid)");
        if (Flag("rescale_betas_zero_snr", false)) throw Bad("rescale_betas_zero_snr", "the project's schedules do not rescale to zero terminal SNR");
        double b0 = Number("beta_start", 1e-4), b1 = Number("beta_end", 0.02);
        var schedule = Text("beta_schedule", "linear") switch
        {
            "linear" => ScheduleKind.Linear,
            CosineName => ScheduleKind.Cosine,
            _ => throw Bad("beta_schedule", $"the project has linear and {CosineName} (cosine) of diffusers' schedules"),
        };
        var variance = Text("variance_type", "fixed_small") switch
        {
            "fixed_small" or "fixed_small_log" => VarianceType.FixedSmall,
            "fixed_large" or "fixed_large_log" => VarianceType.FixedLarge,
            "learned" => VarianceType.Learned,
            "learned_range" => VarianceType.LearnedRange,
            _ => throw Bad("variance_type", "expected fixed_small, fixed_small_log, fixed_large, fixed_large_log, learned or learned_range"),
        };
        var prediction = Text("prediction_type", "epsilon") switch
        {
            "epsilon" => PredictionType.Epsilon,
            "sample" => PredictionType.StartX,
            "v_prediction" => PredictionType.Velocity,
            _ => throw Bad("prediction_type", "expected epsilon, sample or v_prediction"),
        };
        string threshold = "none";
        if (Flag("thresholding", false))
        {
            // diffusers clamps Imagen's s to [1, sample_max_value]: a maximum of 1 makes s = 1, plain clipping to [-1, 1].
            double max = Number("sample_max_value", 1.0), ratio = Number("dynamic_thresholding_ratio", 0.995);
            if (max <= 1) threshold = "clip";
            else if (ratio == 0.995 && max >= DynamicMax) threshold = "dynamic";
            else throw Bad("sample_max_value", FormattableString.Invariant($"the project's dynamic thresholding uses the quantile 0.995 without a cap (a sample_max_value of at least {DynamicMax:0e0}), or 1 for clipping"));
        }
        else if (Flag("clip_sample", true))
        {
            if (Number("clip_sample_range", 1.0) != 1.0) throw Bad("clip_sample_range", "the project clips x_0 to [-1, 1]");
            threshold = "clip";
        }
        return new DiffusionSettings(schedule, (int)t, b0, b1, variance, prediction, threshold);
    }

    /// <summary>A cap this large never binds for images in [-1, 1]: it stands for dynamic thresholding without a cap.</summary>
    private const double DynamicMax = 1e6;

    /// <summary>A DDPMScheduler configuration for <paramref name="s"/>; refuses what diffusers' DDPMScheduler cannot express.</summary>
    public static JsonObject ToJson(DiffusionSettings s)
    {
        ArgumentNullException.ThrowIfNull(s);
        string schedule = s.Schedule switch
        {
            ScheduleKind.Linear => "linear",
            ScheduleKind.Cosine => CosineName,
            _ => throw DdpmException.ForSetting("schedule", $"{SettingNames.Schedule.Name(s.Schedule)}: diffusers' DDPMScheduler has no such schedule (its sigmoid is another curve)"),
        };
        string prediction = s.Prediction switch
        {
            PredictionType.Epsilon => "epsilon",
            PredictionType.StartX => "sample",
            PredictionType.Velocity => "v_prediction",
            _ => throw DdpmException.ForSetting("prediction", $"{SettingNames.Prediction.Name(s.Prediction)}: diffusers' schedulers cannot sample from a network that predicts the posterior mean"),
        };
        string variance = s.Variance switch
        {
            VarianceType.FixedSmall => "fixed_small",
            VarianceType.FixedLarge => "fixed_large",
            VarianceType.Learned => "learned",
            _ => "learned_range",
        };
        string threshold = s.Threshold.Trim().ToLowerInvariant();
        return new JsonObject
        {
            ["_class_name"] = "DDPMScheduler",
            ["_diffusers_version"] = DiffusersUNetConfig.DiffusersVersion,
            ["num_train_timesteps"] = s.Timesteps,
            ["beta_start"] = s.BetaStart,
            ["beta_end"] = s.BetaEnd,
            ["beta_schedule"] = schedule,
            ["trained_betas"] = null,
            ["variance_type"] = variance,
            ["clip_sample"] = threshold == "clip",
            ["clip_sample_range"] = 1.0,
            ["prediction_type"] = prediction,
            ["thresholding"] = threshold == "dynamic",
            ["dynamic_thresholding_ratio"] = 0.995,
            ["sample_max_value"] = threshold == "dynamic" ? DynamicMax : 1.0,
            ["timestep_spacing"] = "leading",
            ["steps_offset"] = 0,
            ["rescale_betas_zero_snr"] = false,
        };
    }

    internal static string Num(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}

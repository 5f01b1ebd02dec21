using System.Text.Json;
using System.Text.Json.Serialization;
using Ddpm.Models;

namespace Ddpm.Runs;

/// <summary>
/// Every setting of a training run. The resolved copy is written to the run folder as config.json, so a run
/// can be resumed, sampled from or reproduced from its folder alone.
/// </summary>
public sealed class TrainConfig
{
    // Data
    /// <summary>IDX file (raw or .gz) or image folder.</summary>
    public string Data { get; set; } = "";
    public int? ImageSize { get; set; }
    public int? Channels { get; set; }
    public int? MaxImages { get; set; }
    public bool RandomFlip { get; set; }

    // Model
    public string Preset { get; set; } = Presets.Default;
    /// <summary>The resolved network; filled from <see cref="Preset"/> when null.</summary>
    public UNetConfig? Model { get; set; }
    public double? Dropout { get; set; }

    // Diffusion
    public string Schedule { get; set; } = "linear";
    public int Timesteps { get; set; } = 1000;
    public double BetaStart { get; set; } = 1e-4;
    public double BetaEnd { get; set; } = 0.02;
    public string Variance { get; set; } = "fixedlarge";
    /// <summary>What the network predicts: eps, x0, v or mu.</summary>
    public string Prediction { get; set; } = "eps";
    /// <summary>Training loss: simple (L_simple), vlb (the true bound) or hybrid (L_simple + VlbWeight L_vlb).</summary>
    public string Loss { get; set; } = "simple";
    /// <summary>lambda of the hybrid loss.</summary>
    public double VlbWeight { get; set; } = Ddpm.Diffusion.GaussianDiffusion.DefaultVlbWeight;
    /// <summary>How t is drawn: uniform, or importance (loss-aware, with loss weights 1 / (T p_t)).</summary>
    public string TimestepSampler { get; set; } = "uniform";
    /// <summary>The recipe the settings started from (ho2020 or improved), for the record; null when none.</summary>
    public string? Recipe { get; set; }

    // Optimisation
    public int BatchSize { get; set; } = 64;
    public long Steps { get; set; } = 1100;
    public double LearningRate { get; set; } = 1e-3;
    public double AdamBeta1 { get; set; } = 0.9;
    public double AdamBeta2 { get; set; } = 0.999;
    public double AdamEps { get; set; } = 1e-8;
    public long WarmupSteps { get; set; } = 100;
    /// <summary>Global gradient-norm clip; 0 disables clipping.</summary>
    public double GradClip { get; set; } = 1.0;
    public double EmaDecay { get; set; } = 0.9999;
    /// <summary>EMA warm-up: decay = 1 - (1 + step / EmaInvGamma)^(-EmaPower), capped at <see cref="EmaDecay"/>.</summary>
    public bool EmaWarmup { get; set; } = true;
    public double EmaPower { get; set; } = 0.75;
    public double EmaInvGamma { get; set; } = 1.0;
    public long Seed { get; set; }

    // Outputs
    public long LogEvery { get; set; } = 10;
    /// <summary>Sample grid from the EMA weights every N steps (0 = only at the end).</summary>
    public long SampleEvery { get; set; }
    public int SampleCount { get; set; } = 64;
    /// <summary>Sampler of the grids: ddpm (ancestral, the paper's), ddim or dpm-solver.</summary>
    public string SampleSampler { get; set; } = "ddpm";
    /// <summary>Steps of the grid sampler (0 = its default: all T for ddpm, 50 for ddim, 20 for dpm-solver).</summary>
    public int SampleSteps { get; set; }
    /// <summary>Checkpoint every N steps (0 = only at the end and on interruption).</summary>
    public long CheckpointEvery { get; set; } = 250;
    public int KeepCheckpoints { get; set; } = 2;

    // Evaluation while training (not part of the numerics)
    /// <summary>Score the EMA model every N steps (0 = never) and keep the best checkpoint in checkpoints/best.</summary>
    public long EvalEvery { get; set; }
    /// <summary>Samples drawn per evaluation.</summary>
    public int EvalCount { get; set; } = 500;
    /// <summary>Training images the samples are compared with (the first N); at least twice EvalCount for the floor.</summary>
    public int EvalRealCount { get; set; } = 5000;
    /// <summary>Offline classifier: "auto" (fashion-mnist when the data path names it, mnist for other grey data, none for RGB), "mnist", "fashion-mnist", "none" or a weights file.</summary>
    public string EvalClassifier { get; set; } = "auto";
    /// <summary>FID Inception weights; FID is computed too when given.</summary>
    public string? InceptionWeights { get; set; }
    /// <summary>Sampler for the evaluation samples: ddpm, ddim or dpm-solver.</summary>
    public string EvalSampler { get; set; } = "dpm-solver";
    /// <summary>Sampling steps of the evaluation sampler (0 = the sampler's default: T for ddpm, 50 for ddim, 20 for dpm-solver).</summary>
    public int EvalSteps { get; set; }

    // Runtime (not part of the numerics)
    public string Device { get; set; } = "auto";
    public int Threads { get; set; }

    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static TrainConfig FromJson(string json, string source)
    {
        try
        {
            return JsonSerializer.Deserialize<TrainConfig>(json, Json)
                ?? throw new DdpmException($"{source}: empty configuration");
        }
        catch (JsonException e)
        {
            throw new DdpmException($"{source}: invalid configuration JSON: {e.Message}", e);
        }
    }

    public static TrainConfig Load(string path)
    {
        if (!File.Exists(path)) throw new DdpmException($"configuration file not found: {path}");
        return FromJson(File.ReadAllText(path), path);
    }

    public TrainConfig Clone() => FromJson(ToJson(), "clone");

    private static void CheckSamplerName(string name, string option)
    {
        try
        {
            Sampling.SamplerRegistry.Resolve(name);
        }
        catch (DdpmException)
        {
            throw new DdpmException($"{option} {name}: expected {Sampling.SamplerRegistry.NameList}");
        }
    }

    /// <summary>Rejects impossible settings with a one-line message naming the option.</summary>
    public void Validate()
    {
        static void Check(bool ok, string message)
        {
            if (!ok) throw new DdpmException(message);
        }
        Check(!string.IsNullOrWhiteSpace(Data), "--data: no training data given");
        Check(BatchSize >= 1, $"--batch-size {BatchSize}: must be at least 1");
        Check(Steps >= 1, $"--steps {Steps}: must be at least 1");
        Check(Timesteps >= 1 && Timesteps <= 100_000, $"--timesteps {Timesteps}: must be between 1 and 100000");
        Check(LearningRate > 0 && double.IsFinite(LearningRate), $"--lr {LearningRate}: must be a positive number");
        Check(AdamEps > 0, $"--adam-eps {AdamEps}: must be positive");
        Check(AdamBeta1 is >= 0 and < 1 && AdamBeta2 is >= 0 and < 1, "--adam-beta1/--adam-beta2: must be in [0, 1)");
        Check(WarmupSteps >= 0, $"--warmup {WarmupSteps}: must not be negative");
        Check(GradClip >= 0 && double.IsFinite(GradClip), $"--grad-clip {GradClip}: must be 0 (off) or positive");
        Check(EmaDecay is >= 0 and < 1, $"--ema-decay {EmaDecay}: must be in [0, 1)");
        Check(EmaPower > 0 && EmaInvGamma > 0, "--ema-power/--ema-inv-gamma: must be positive");
        Check(LogEvery >= 1, $"--log-every {LogEvery}: must be at least 1");
        Check(SampleEvery >= 0, $"--sample-every {SampleEvery}: must not be negative");
        Check(SampleSteps >= 0 && SampleSteps <= Timesteps, $"--sample-steps {SampleSteps}: must be between 0 (the sampler's default) and --timesteps {Timesteps}");
        CheckSamplerName(SampleSampler, "--sample-sampler");
        Check(SampleCount is >= 1 and <= 4096, $"--sample-count {SampleCount}: must be between 1 and 4096");
        Check(CheckpointEvery >= 0, $"--checkpoint-every {CheckpointEvery}: must not be negative");
        Check(KeepCheckpoints >= 1, $"--keep-checkpoints {KeepCheckpoints}: must be at least 1");
        Check(Dropout is null or (>= 0 and < 1), $"--dropout {Dropout}: must be in [0, 1)");
        Check(ImageSize is null or >= 4, $"--image-size {ImageSize}: must be at least 4");
        Check(Channels is null or 1 or 3, $"--channels {Channels}: must be 1 or 3");
        Check(MaxImages is null or >= 1, $"--max-images {MaxImages}: must be at least 1");
        Check(EvalEvery >= 0, $"--eval-every {EvalEvery}: must not be negative");
        Check(EvalCount is >= 10 and <= 1_000_000, $"--eval-count {EvalCount}: must be between 10 and 1000000");
        Check(EvalRealCount >= 2 * EvalCount, $"--eval-real-count {EvalRealCount}: must be at least twice --eval-count ({2L * EvalCount}) for the real-vs-real floor");
        Check(EvalSteps >= 0 && EvalSteps <= Timesteps, $"--eval-steps {EvalSteps}: must be between 0 (the sampler's default) and --timesteps {Timesteps}");
        CheckSamplerName(EvalSampler, "--eval-sampler");
        Check(Threads >= 0, $"--threads {Threads}: must not be negative");
        DiffusionFactory.ParseSchedule(Schedule);
        DiffusionFactory.ParseVariance(Variance);
        DiffusionFactory.ParsePrediction(Prediction);
        DiffusionFactory.ParseLoss(Loss);
        DiffusionFactory.ParseTimestepSampler(TimestepSampler);
        Check(VlbWeight >= 0 && double.IsFinite(VlbWeight), $"--vlb-weight {VlbWeight}: must be 0 or positive");
        DiffusionFactory.CheckCombination(this);
        Model?.Validate();
    }
}

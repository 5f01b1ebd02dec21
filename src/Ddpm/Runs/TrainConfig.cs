using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Ddpm.Configuration;
using Ddpm.Diffusion;
using Ddpm.Models;
using Ddpm.Runtime;

namespace Ddpm.Runs;

/// <summary>
/// Every setting of a training run, each declared once with <see cref="SettingAttribute"/>: its JSON key (snake_case
/// of the property), its help text, and so its command-line option. The resolved copy is written to the run folder
/// as config.json, so a run can be resumed, sampled from or reproduced from its folder alone. Names are parsed into
/// typed values where the object is built (JSON or a front end), so a wrong name fails there, once.
/// </summary>
public sealed class TrainConfig : IJsonOnDeserializing
{
    /// <summary>
    /// A key missing from a configuration JSON means what it meant when the key was added, not today's default: files
    /// written before prediction and sample_sampler existed were trained with eps and drew their grids with the
    /// ancestral sampler over all T steps, so an old run resumes, samples and reproduces as it did. (Called before the keys present
    /// are read; a front end without a file starts from today's defaults, <c>new TrainConfig()</c>.)
    /// </summary>
    void IJsonOnDeserializing.OnDeserializing()
    {
        Prediction = PredictionType.Epsilon;
        SampleSampler = Sampling.AncestralSampler.RegistryName;
        SampleSteps = 0;
    }

    // Data
    [Setting("Training data: an IDX file (raw or .gz) or a folder of PNG/JPEG images")]
    public string Data { get; set; } = "";
    [Setting("Resize images to this size (default: the data's)")]
    public int? ImageSize { get; set; }
    [Setting("1 (grey) or 3 (RGB) (default: the data's)")]
    public int? Channels { get; set; }
    [Setting("Use at most this many images")]
    public int? MaxImages { get; set; }
    [Setting("Random horizontal flips")]
    public bool RandomFlip { get; set; }

    // Model
    [Setting("Network preset (see ddpm info)")]
    public string Preset { get; set; } = Presets.Default;
    /// <summary>The resolved network; filled from <see cref="Preset"/> when null.</summary>
    [Setting("The network itself, as a JSON file holding a run's \"model\" object (default: built from preset)")]
    public UNetConfig? Model { get; set; }
    [Setting("Dropout of the residual blocks (default: the preset's)")]
    public double? Dropout { get; set; }
    /// <summary>
    /// Pretrained weights the run starts from (fine-tuning), as given: a run or checkpoint folder of this project (its
    /// EMA weights), a diffusers DDPM folder or an original DDPM checkpoint. Both the network and its EMA start from
    /// them, with a new optimizer; the network's layout and, unless set explicitly, the diffusion settings come from it.
    /// Read when the run starts only: a resumed run continues from its own checkpoint.
    /// </summary>
    [Setting("Start from pretrained weights (fine-tuning): a run or checkpoint folder (its EMA weights), a diffusers DDPM folder or an original DDPM checkpoint; a new optimizer, the network and the diffusion settings from the checkpoint unless given")]
    public string? InitFrom { get; set; }

    // Diffusion
    [Setting("Noise schedule: linear, cosine or sigmoid")]
    public ScheduleKind Schedule { get; set; } = ScheduleKind.Cosine;
    [Setting("Diffusion steps T")]
    public int Timesteps { get; set; } = 1000;
    [Setting("Linear schedule's first beta")]
    public double BetaStart { get; set; } = 1e-4;
    [Setting("Linear schedule's last beta")]
    public double BetaEnd { get; set; } = 0.02;
    [Setting("Reverse-process variance: fixedlarge, fixedsmall, learned or learned-range")]
    public VarianceType Variance { get; set; } = VarianceType.FixedLarge;
    /// <summary>What the network predicts: eps, x0, v or mu.</summary>
    [Setting("What the network predicts: eps, x0, v or mu")]
    public PredictionType Prediction { get; set; } = PredictionType.Velocity;
    /// <summary>Training loss: simple (L_simple), vlb (the true bound) or hybrid (L_simple + VlbWeight L_vlb).</summary>
    [Setting("Training loss: simple, vlb or hybrid (simple + vlb_weight x vlb)")]
    public LossType Loss { get; set; } = LossType.Simple;
    /// <summary>lambda of the hybrid loss.</summary>
    [Setting("lambda of the hybrid loss")]
    public double VlbWeight { get; set; } = GaussianDiffusion.DefaultVlbWeight;
    /// <summary>Per-timestep weight of L_simple's squared error (see <see cref="Diffusion.LossWeighting"/>).</summary>
    [Setting("Weight of L_simple per timestep: none (the paper's), min-snr (Hang et al. 2023) or p2 (Choi et al. 2022)")]
    public LossWeightingKind LossWeighting { get; set; } = LossWeightingKind.None;
    /// <summary>gamma of the weighting; null = its paper's (5 for min-snr, 1 for p2).</summary>
    [Setting("gamma of the loss weighting (default: 5 for min-snr, 1 for p2)")]
    public double? LossWeightGamma { get; set; }
    /// <summary>How t is drawn: uniform, or importance (loss-aware, with loss weights 1 / (T p_t)).</summary>
    [Setting("How t is drawn: uniform or importance (loss-aware)")]
    public TimestepSamplerKind TimestepSampler { get; set; } = TimestepSamplerKind.Uniform;
    /// <summary>The recipe the settings started from (ho2020 or improved), for the record; null when none.</summary>
    [Setting("Start from a paper's diffusion settings: ho2020 (eps, fixedlarge, linear, simple) or improved (cosine, learned-range, hybrid); other settings given override it")]
    public string? Recipe { get; set; }

    // Optimisation
    [Setting("Batch size")]
    public int BatchSize { get; set; } = 64;
    [Setting("Optimizer steps; when resuming, the new total", Resumable = true)]
    public long Steps { get; set; } = 6000;
    /// <summary>
    /// A budget of training minutes (the run's train_sec, evaluations excluded, counted over resumes): training stops
    /// after the step that reaches it and finishes as at <see cref="Steps"/> (checkpoint, evaluation, final grid).
    /// 0 = none. Each step's numerics do not depend on it; how many steps a budget buys depends on the machine.
    /// </summary>
    [Setting("Stop after this many minutes of training (train_sec, evaluations excluded, over resumes) and finish as at the last step; 0 = no limit", Resumable = true)]
    public double MaxMinutes { get; set; }
    [Setting("Adam learning rate")]
    public double LearningRate { get; set; } = 1e-3;
    [Setting("Adam beta1")]
    public double AdamBeta1 { get; set; } = 0.9;
    [Setting("Adam beta2")]
    public double AdamBeta2 { get; set; } = 0.999;
    [Setting("Adam epsilon")]
    public double AdamEps { get; set; } = 1e-8;
    [Setting("Linear learning-rate warm-up steps")]
    public long WarmupSteps { get; set; } = 100;
    /// <summary>How the rate falls after the warm-up (see <see cref="Training.LearningRateSchedule"/>); none keeps it constant, as the paper does.</summary>
    [Setting("Learning-rate decay after the warm-up: none (constant, the paper's), cosine or linear, down to learning_rate x lr_final_ratio at step lr_decay_steps")]
    public LearningRateDecay LrDecay { get; set; } = LearningRateDecay.None;
    /// <summary>The step at which the decay reaches its final rate (counted from 0, warm-up included); null = the run's steps, fixed when it starts.</summary>
    [Setting("Step at which the decay reaches its final rate (default: the run's steps when it starts; a resumed run keeps its own unless given)", Resumable = true)]
    public long? LrDecaySteps { get; set; }
    [Setting("The decay's final rate as a fraction of learning_rate")]
    public double LrFinalRatio { get; set; }
    /// <summary>Global gradient-norm clip; 0 disables clipping.</summary>
    [Setting("Global gradient-norm clip, 0 = off")]
    public double GradClip { get; set; } = 1.0;
    [Setting("EMA decay (the cap, with warm-up)")]
    public double EmaDecay { get; set; } = 0.9999;
    /// <summary>EMA warm-up: decay = 1 - (1 + step / EmaInvGamma)^(-EmaPower), capped at <see cref="EmaDecay"/>.</summary>
    [Setting("EMA warm-up: decay = 1 - (1 + step / ema_inv_gamma)^(-ema_power), capped at ema_decay; false = the fixed decay from the first step")]
    public bool EmaWarmup { get; set; } = true;
    [Setting("EMA warm-up power")]
    public double EmaPower { get; set; } = 0.75;
    [Setting("EMA warm-up inverse gamma")]
    public double EmaInvGamma { get; set; } = 1.0;
    [Setting("Seed of everything random")]
    public long Seed { get; set; }

    // Outputs
    [Setting("Metrics line every N steps", Resumable = true)]
    public long LogEvery { get; set; } = 10;
    /// <summary>Sample grid from the EMA weights every N steps (0 = only at the end).</summary>
    [Setting("Sample grid from the EMA weights every N steps, 0 = only at the end", Resumable = true)]
    public long SampleEvery { get; set; }
    [Setting("Images in each sample grid", Resumable = true)]
    public int SampleCount { get; set; } = 64;
    /// <summary>Sampler of the grids: ddpm (ancestral, the paper's), ddim or dpm-solver.</summary>
    [Setting("Sampler of the grids: ddpm (ancestral, over sample_steps), ddim or dpm-solver", Resumable = true)]
    public string SampleSampler { get; set; } = Sampling.AncestralSampler.RegistryName;
    /// <summary>
    /// Steps of the grid sampler: 0 = the sampler's own default (all T for ddpm, 50 for ddim, 20 for dpm-solver); null =
    /// <see cref="DefaultAncestralGridSteps"/> for ddpm (all T when T is smaller) and the sampler's default for the
    /// others. See <see cref="GridSteps"/>.
    /// </summary>
    [Setting("Steps of the grid sampler, 0 = the sampler's own default (T for ddpm, 50 for ddim, 20 for dpm-solver) (default: 250 for ddpm, at most T; the sampler's own for the others)", Resumable = true)]
    public int? SampleSteps { get; set; }

    /// <summary>
    /// The ancestral grid's steps when <see cref="SampleSteps"/> is not given: respaced as improved DDPM does. The
    /// default run's weights scored FD_classifier 9.6 with them against 16.5 with DPM-Solver++'s 20 steps and 11.2 with
    /// 100 ancestral steps (README, "Round six"); a grid of 64 costs about 25 s of the 2-core machine.
    /// </summary>
    public const int DefaultAncestralGridSteps = 250;

    /// <summary>The grid sampler's step count as given to the sampler (0: its own default): <see cref="SampleSteps"/> resolved.</summary>
    public int GridSteps() => SampleSteps ?? (SampleSampler == Sampling.AncestralSampler.RegistryName ? Math.Min(DefaultAncestralGridSteps, Timesteps) : 0);
    /// <summary>How the grid sampler spreads its steps (null: the sampler's default); see <see cref="Sampling.SamplerOptions.ParseSpacing"/>.</summary>
    [Setting("Spacing of the grid sampler's steps: even, logsnr, linspace, leading, trailing or karras (default: the sampler's)", Resumable = true)]
    public string? SampleSpacing { get; set; }
    /// <summary>What the grid sampler does to the predicted x_0: clip, dynamic or none.</summary>
    [Setting("Threshold of the grid sampler's predicted x_0: clip, dynamic or none", Resumable = true)]
    public string SampleThreshold { get; set; } = "clip";
    /// <summary>DDIM's eta for the grids (only with the ddim grid sampler).</summary>
    [Setting("DDIM's eta for the grids, 0 (deterministic) to 1; only with sample_sampler ddim", Resumable = true)]
    public double SampleEta { get; set; }
    /// <summary>Checkpoint every N steps (0 = only at the end and on interruption).</summary>
    [Setting("Checkpoint every N steps, 0 = only at the end", Resumable = true)]
    public long CheckpointEvery { get; set; } = 250;
    [Setting("Checkpoints kept", Resumable = true)]
    public int KeepCheckpoints { get; set; } = 2;

    // Evaluation while training (not part of the numerics)
    /// <summary>Score the EMA model every N steps (0 = never) and keep the best checkpoint in checkpoints/best.</summary>
    [Setting("Score the EMA model every N steps (and at the end) and keep the best checkpoint in checkpoints/best, 0 = never", Resumable = true)]
    public long EvalEvery { get; set; }
    /// <summary>Samples drawn per evaluation.</summary>
    [Setting("Samples per evaluation", Resumable = true)]
    public int EvalCount { get; set; } = 500;
    /// <summary>Training images the samples are compared with (the first N); at least twice EvalCount for the floor.</summary>
    [Setting("Training images the samples are compared with, at least 2x eval_count", Resumable = true)]
    public int EvalRealCount { get; set; } = 5000;
    /// <summary>Offline classifier; see <see cref="EvalClassifierChoice.Resolve"/> for auto's rule.</summary>
    [Setting("Offline distance: auto (fashion-mnist when the data path contains 'fashion', mnist for other grey data, none for RGB), mnist, fashion-mnist, none, or a classifier weights file", Resumable = true)]
    public EvalClassifierChoice EvalClassifier { get; set; } = EvalClassifierChoice.Auto;
    /// <summary>FID Inception weights; FID is computed too when given.</summary>
    [Setting("FID Inception weights (pt_inception-2015-12-05-6726825d.pth); FID is evaluated too when given", Resumable = true)]
    public string? InceptionWeights { get; set; }
    /// <summary>Sampler for the evaluation samples: ddpm, ddim or dpm-solver.</summary>
    [Setting("Sampler of the evaluation samples: ddpm, ddim or dpm-solver", Resumable = true)]
    public string EvalSampler { get; set; } = "dpm-solver";
    /// <summary>Sampling steps of the evaluation sampler (0 = the sampler's default: T for ddpm, 50 for ddim, 20 for dpm-solver).</summary>
    [Setting("Steps of the evaluation sampler, 0 = its default (20 for dpm-solver)", Resumable = true)]
    public int EvalSteps { get; set; }
    /// <summary>How the evaluation sampler spreads its steps (null: the sampler's default).</summary>
    [Setting("Spacing of the evaluation sampler's steps: even, logsnr, linspace, leading, trailing or karras (default: the sampler's)", Resumable = true)]
    public string? EvalSpacing { get; set; }
    /// <summary>What the evaluation sampler does to the predicted x_0: clip, dynamic or none.</summary>
    [Setting("Threshold of the evaluation sampler's predicted x_0: clip, dynamic or none", Resumable = true)]
    public string EvalThreshold { get; set; } = "clip";
    /// <summary>DDIM's eta for the evaluation samples (only with the ddim evaluation sampler).</summary>
    [Setting("DDIM's eta for the evaluation samples, 0 to 1; only with eval_sampler ddim", Resumable = true)]
    public double EvalEta { get; set; }

    // Runtime (not part of the numerics)
    [Setting("cpu, cuda, cuda:N or auto (CUDA when TorchSharp sees it)", Resumable = true)]
    public DeviceSpec Device { get; set; } = DeviceSpec.Auto;
    [Setting("Intra-op threads for libtorch, 0 = all cores", Resumable = true)]
    public int Threads { get; set; }

    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        Converters =
        {
            new EnumNameConverter<ScheduleKind>(SettingNames.Schedule),
            new EnumNameConverter<VarianceType>(SettingNames.Variance),
            new EnumNameConverter<PredictionType>(SettingNames.Prediction),
            new EnumNameConverter<LossType>(SettingNames.Loss),
            new EnumNameConverter<TimestepSamplerKind>(SettingNames.TimestepSampler),
            new EnumNameConverter<LossWeightingKind>(SettingNames.LossWeighting),
            new EnumNameConverter<LearningRateDecay>(SettingNames.LrDecay),
            new TextValueConverter<DeviceSpec>(DeviceSpec.Parse),
            new TextValueConverter<EvalClassifierChoice>(EvalClassifierChoice.Parse),
        },
    };

    /// <summary>The declared settings, in declaration order (keys as in config.json).</summary>
    public static IReadOnlyList<SettingInfo> Settings { get; } = SettingTable.Of<TrainConfig>(JsonNamingPolicy.SnakeCaseLower);

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
        catch (DdpmException e) when (e.Setting is not null)
        {
            throw DdpmException.ForSetting(e.Setting, $"{e.Problem} (in {source})");
        }
    }

    public static TrainConfig Load(string path)
    {
        if (!File.Exists(path)) throw new DdpmException($"configuration file not found: {path}");
        return FromJson(File.ReadAllText(path), path);
    }

    public TrainConfig Clone() => FromJson(ToJson(), "clone");

    /// <summary>
    /// A setting's value from text as a front end receives it: numbers and booleans in the invariant culture, names
    /// through the same spellings config.json is read with, and the model from a JSON file of that path.
    /// </summary>
    public static object? ParseSetting(SettingInfo setting, string text)
    {
        ArgumentNullException.ThrowIfNull(setting);
        var type = setting.ValueType;
        if (type == typeof(string)) return text;
        if (type == typeof(UNetConfig))
        {
            if (!File.Exists(text)) throw DdpmException.ForSetting(setting.Key, $"{text}: file not found");
            return Deserialize(File.ReadAllText(text), type, setting.Key, text);
        }
        bool quoted = type != typeof(int) && type != typeof(long) && type != typeof(double) && type != typeof(bool);
        return Deserialize(quoted ? JsonSerializer.Serialize(text) : text.Trim(), type, setting.Key, text);
    }

    private static object? Deserialize(string json, Type type, string key, string text)
    {
        try
        {
            return JsonSerializer.Deserialize(json, type, Json);
        }
        catch (JsonException)
        {
            throw DdpmException.ForSetting(key, $"{text}: expected {(type == typeof(bool) ? "true or false" : type == typeof(double) ? "a number" : type.IsPrimitive ? "an integer" : "a " + type.Name)}");
        }
    }

    /// <summary>The grid's (prefix "sample") or the evaluation's ("eval") sampler settings, checked where the configuration is validated.</summary>
    private static void CheckSamplerSettings(string prefix, string sampler, string? spacing, string threshold, double eta)
    {
        string Num(double v) => v.ToString(CultureInfo.InvariantCulture);
        try { if (spacing is not null) Sampling.SamplerOptions.ParseSpacing(spacing); }
        catch (DdpmException) { throw DdpmException.ForSetting($"{prefix}_spacing", $"{spacing}: expected even, logsnr, linspace, leading, trailing or karras"); }
        try { Sampling.SamplerOptions.ParseThreshold(threshold ?? ""); }
        catch (DdpmException) { throw DdpmException.ForSetting($"{prefix}_threshold", $"{threshold}: expected clip, dynamic or none"); }
        if (!(eta >= 0 && eta <= 1)) throw DdpmException.ForSetting($"{prefix}_eta", $"{Num(eta)}: expected a value in [0, 1]");
        if (eta != 0 && !sampler.Equals(Sampling.DdimSampler.RegistryName, StringComparison.OrdinalIgnoreCase))
            throw DdpmException.ForSetting($"{prefix}_eta", $"{Num(eta)}: applies to the ddim sampler only ({prefix}_sampler is {sampler})");
    }

    /// <summary>
    /// A sampler by registry name with a run's settings for it: steps (0: its default), spacing (null: its default),
    /// threshold, and DDIM's eta. The grids use the sample_* settings, the evaluation the eval_* ones.
    /// </summary>
    public static Sampling.ISampler BuildSampler(string name, int steps, string? spacing, string threshold, double eta)
    {
        var sampler = Sampling.SamplerRegistry.Create(name, o => o with
        {
            Steps = steps > 0 ? steps : null,
            Spacing = spacing is null ? null : Sampling.SamplerOptions.ParseSpacing(spacing),
            Threshold = Sampling.SamplerOptions.ParseThreshold(threshold),
        });
        return sampler.Options is Sampling.DdimOptions ddim ? sampler.With(ddim with { Eta = eta }) : sampler;
    }

    private static void CheckSamplerName(string name, string setting)
    {
        try
        {
            Sampling.SamplerRegistry.Resolve(name);
        }
        catch (DdpmException)
        {
            throw DdpmException.ForSetting(setting, $"{name}: expected {Sampling.SamplerRegistry.NameList}");
        }
    }

    /// <summary>
    /// The decay's settings: a final fraction in [0, 1], neither given without a decay. A span that ends within the
    /// warm-up is allowed (a run shorter than its warm-up, as a smoke test is, gets the span of its steps): the rate
    /// is then the final one from the end of the warm-up on.
    /// </summary>
    private void CheckDecay()
    {
        string ratio = LrFinalRatio.ToString(CultureInfo.InvariantCulture);
        if (!Enum.IsDefined(LrDecay)) throw DdpmException.ForSetting("lr_decay", $"{LrDecay}: expected {SettingNames.LrDecay.Expected}");
        if (LrDecay == LearningRateDecay.None)
        {
            if (LrDecaySteps is not null) throw DdpmException.ForSetting("lr_decay_steps", "applies to a learning-rate decay (lr_decay is none)");
            if (LrFinalRatio != 0) throw DdpmException.ForSetting("lr_final_ratio", $"{ratio}: applies to a learning-rate decay (lr_decay is none)");
            return;
        }
        if (!(LrFinalRatio >= 0 && LrFinalRatio <= 1)) throw DdpmException.ForSetting("lr_final_ratio", $"{ratio}: must be in [0, 1]");
        if (LrDecaySteps is long d && d < 1) throw DdpmException.ForSetting("lr_decay_steps", $"{d}: must be at least 1");
    }

    /// <summary>Rejects impossible values and combinations with a one-line message naming the setting; training data must be named.</summary>
    public void Validate() => Validate(requireData: true);

    /// <summary>
    /// The same; <paramref name="requireData"/> false accepts an empty data path: a checkpoint's configuration read to
    /// sample from it need not name any (a converted checkpoint's does not), while training needs it.
    /// </summary>
    public void Validate(bool requireData)
    {
        static void Check(bool ok, string setting, string problem)
        {
            if (!ok) throw DdpmException.ForSetting(setting, problem);
        }
        static string F(double v) => v.ToString(CultureInfo.InvariantCulture);
        Check(!requireData || !string.IsNullOrWhiteSpace(Data), "data", ": no training data given");
        Check(InitFrom is null || !string.IsNullOrWhiteSpace(InitFrom), "init_from", ": empty path");
        Check(BatchSize >= 1, "batch_size", $"{BatchSize}: must be at least 1");
        Check(Steps >= 1, "steps", $"{Steps}: must be at least 1");
        Check(Timesteps >= 1 && Timesteps <= 100_000, "timesteps", $"{Timesteps}: must be between 1 and 100000");
        Check(MaxMinutes >= 0 && double.IsFinite(MaxMinutes), "max_minutes", $"{F(MaxMinutes)}: must be 0 (no limit) or a positive number of minutes");
        Check(LearningRate > 0 && double.IsFinite(LearningRate), "learning_rate", $"{F(LearningRate)}: must be a positive number");
        Check(AdamEps > 0, "adam_eps", $"{F(AdamEps)}: must be positive");
        Check(AdamBeta1 is >= 0 and < 1, "adam_beta1", $"{F(AdamBeta1)}: must be in [0, 1)");
        Check(AdamBeta2 is >= 0 and < 1, "adam_beta2", $"{F(AdamBeta2)}: must be in [0, 1)");
        Check(WarmupSteps >= 0, "warmup_steps", $"{WarmupSteps}: must not be negative");
        CheckDecay();
        Check(GradClip >= 0 && double.IsFinite(GradClip), "grad_clip", $"{F(GradClip)}: must be 0 (off) or positive");
        Check(EmaDecay is >= 0 and < 1, "ema_decay", $"{F(EmaDecay)}: must be in [0, 1)");
        Check(EmaPower > 0, "ema_power", $"{F(EmaPower)}: must be positive");
        Check(EmaInvGamma > 0, "ema_inv_gamma", $"{F(EmaInvGamma)}: must be positive");
        Check(LogEvery >= 1, "log_every", $"{LogEvery}: must be at least 1");
        Check(SampleEvery >= 0, "sample_every", $"{SampleEvery}: must not be negative");
        Check(SampleSteps is null || (SampleSteps >= 0 && SampleSteps <= Timesteps), "sample_steps", $"{SampleSteps}: must be between 0 (the sampler's default) and timesteps {Timesteps}");
        CheckSamplerName(SampleSampler, "sample_sampler");
        CheckSamplerSettings("sample", SampleSampler, SampleSpacing, SampleThreshold, SampleEta);
        Check(SampleCount is >= 1 and <= 4096, "sample_count", $"{SampleCount}: must be between 1 and 4096");
        Check(CheckpointEvery >= 0, "checkpoint_every", $"{CheckpointEvery}: must not be negative");
        Check(KeepCheckpoints >= 1, "keep_checkpoints", $"{KeepCheckpoints}: must be at least 1");
        Check(Dropout is null or (>= 0 and < 1), "dropout", $"{Dropout}: must be in [0, 1)");
        Check(ImageSize is null or >= 4, "image_size", $"{ImageSize}: must be at least 4");
        Check(Channels is null or 1 or 3, "channels", $"{Channels}: must be 1 or 3");
        Check(MaxImages is null or >= 1, "max_images", $"{MaxImages}: must be at least 1");
        Check(EvalEvery >= 0, "eval_every", $"{EvalEvery}: must not be negative");
        Check(EvalCount is >= 10 and <= 1_000_000, "eval_count", $"{EvalCount}: must be between 10 and 1000000");
        Check(EvalRealCount >= 2 * EvalCount, "eval_real_count", $"{EvalRealCount}: must be at least twice eval_count ({2L * EvalCount}) for the real-vs-real floor");
        Check(EvalSteps >= 0 && EvalSteps <= Timesteps, "eval_steps", $"{EvalSteps}: must be between 0 (the sampler's default) and timesteps {Timesteps}");
        CheckSamplerName(EvalSampler, "eval_sampler");
        CheckSamplerSettings("eval", EvalSampler, EvalSpacing, EvalThreshold, EvalEta);
        Check(Threads >= 0, "threads", $"{Threads}: must not be negative");
        Check(Enum.IsDefined(Schedule), "schedule", $"{Schedule}: expected {SettingNames.Schedule.Expected}");
        Check(Enum.IsDefined(Variance), "variance", $"{Variance}: expected {SettingNames.Variance.Expected}");
        Check(Enum.IsDefined(Prediction), "prediction", $"{Prediction}: expected {SettingNames.Prediction.Expected}");
        Check(Enum.IsDefined(Loss), "loss", $"{Loss}: expected {SettingNames.Loss.Expected}");
        Check(Enum.IsDefined(TimestepSampler), "timestep_sampler", $"{TimestepSampler}: expected {SettingNames.TimestepSampler.Expected}");
        Check(Device is not null, "device", ": not set");
        Check(EvalClassifier is not null, "eval_classifier", ": not set");
        Check(Recipe is null || TrainRecipes.Names.Contains(Recipe), "recipe", $"{Recipe}: expected {string.Join(" or ", TrainRecipes.Names)}");
        Check(VlbWeight >= 0 && double.IsFinite(VlbWeight), "vlb_weight", $"{F(VlbWeight)}: must be 0 or positive");
        GaussianDiffusion.CheckVarianceAndLoss(Variance, Loss);
        Check(Enum.IsDefined(LossWeighting), "loss_weighting", $"{LossWeighting}: expected {SettingNames.LossWeighting.Expected}");
        if (LossWeightGamma is not null && LossWeighting == LossWeightingKind.None)
            throw DdpmException.ForSetting("loss_weight_gamma", "applies to a loss weighting (loss_weighting is none)");
        Diffusion.LossWeighting.Of(LossWeighting, LossWeightGamma).Check(Prediction, Loss);
        Model?.Validate();
    }
}

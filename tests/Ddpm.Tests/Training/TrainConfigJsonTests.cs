using Ddpm.Runs;
using System.Text.Json;
using Ddpm.Configuration;
using Ddpm.Diffusion;
using Ddpm.Runtime;
using Ddpm.Training;

namespace Ddpm.Tests.Training;

/// <summary>
/// config.json as runs have written it (every value a plain string) still loads into the typed configuration, every
/// spelling the earlier string parsers accepted still reads, and writing gives back today's strings.
/// </summary>
public class TrainConfigJsonTests
{
    /// <summary>The config.json of a default run as the string-typed configuration wrote it (model left out as null).</summary>
    private const string DefaultRunJson = """
        {
          "data": "/home/u/ddpm/data/mnist-10k/images-idx3-ubyte.gz",
          "image_size": 28,
          "channels": 1,
          "max_images": null,
          "random_flip": false,
          "preset": "mnist-small",
          "model": null,
          "dropout": null,
          "schedule": "linear",
          "timesteps": 1000,
          "beta_start": 0.0001,
          "beta_end": 0.02,
          "variance": "fixedlarge",
          "prediction": "eps",
          "loss": "simple",
          "vlb_weight": 0.001,
          "timestep_sampler": "uniform",
          "recipe": null,
          "batch_size": 64,
          "steps": 1100,
          "learning_rate": 0.001,
          "adam_beta1": 0.9,
          "adam_beta2": 0.999,
          "adam_eps": 1E-08,
          "warmup_steps": 100,
          "grad_clip": 1,
          "ema_decay": 0.9999,
          "ema_warmup": true,
          "ema_power": 0.75,
          "ema_inv_gamma": 1,
          "seed": 0,
          "log_every": 10,
          "sample_every": 0,
          "sample_count": 64,
          "sample_sampler": "ddpm",
          "sample_steps": 0,
          "checkpoint_every": 250,
          "keep_checkpoints": 2,
          "eval_every": 0,
          "eval_count": 500,
          "eval_real_count": 5000,
          "eval_classifier": "auto",
          "inception_weights": null,
          "eval_sampler": "dpm-solver",
          "eval_steps": 0,
          "device": "auto",
          "threads": 0
        }
        """;

    [Fact]
    public void TodaysConfigJsonLoadsIntoTypedValuesAndWritesBackTheSameStrings()
    {
        var c = TrainConfig.FromJson(DefaultRunJson, "config.json");
        Assert.Equal((ScheduleKind.Linear, VarianceType.FixedLarge, PredictionType.Epsilon, LossType.Simple, TimestepSamplerKind.Uniform),
            (c.Schedule, c.Variance, c.Prediction, c.Loss, c.TimestepSampler));
        Assert.Equal(EvalClassifierChoice.Auto, c.EvalClassifier);
        Assert.Equal(DeviceSpec.Auto, c.Device);
        // Writing gives the same keys in the same order with the same string values (the numbers as .NET writes doubles).
        var written = JsonDocument.Parse(c.ToJson()).RootElement.EnumerateObject().ToList();
        var original = JsonDocument.Parse(DefaultRunJson).RootElement.EnumerateObject().ToList();
        // A file from before the learning-rate decay existed trains at the paper's constant rate, as it did, and one from
        // before the time budget trains to its steps.
        Assert.Equal((LearningRateDecay.None, (long?)null, 0.0), (c.LrDecay, c.LrDecaySteps, c.LrFinalRatio));
        Assert.Equal(0, c.MaxMinutes);
        // Settings added since (the loss weighting, the grid's and the evaluation's sampler group, init_from, the decay) are written with their
        // defaults; the rest keeps its keys and order.
        string[] added = ["loss_weighting", "loss_weight_gamma", "sample_spacing", "sample_threshold", "sample_eta", "eval_spacing", "eval_threshold", "eval_eta", "init_from",
            "lr_decay", "lr_decay_steps", "lr_final_ratio", "max_minutes"];
        Assert.Equal(added.Order(), written.Select(p => p.Name).Except(original.Select(p => p.Name)).Order());
        written = written.Where(p => !added.Contains(p.Name)).ToList();
        Assert.Equal(original.Select(p => p.Name), written.Select(p => p.Name));
        foreach (var (o, w) in original.Zip(written))
        {
            Assert.Equal(o.Value.ValueKind, w.Value.ValueKind);
            if (o.Value.ValueKind == JsonValueKind.String) Assert.Equal(o.Value.GetString(), w.Value.GetString());
            if (o.Value.ValueKind == JsonValueKind.Number) Assert.Equal(o.Value.GetDouble(), w.Value.GetDouble());
        }
        // The defaults of a new configuration are this run's settings.
        Assert.Equal(new TrainConfig().ToJson(), TrainConfig.FromJson(new TrainConfig().ToJson(), "x").ToJson());
    }

    [Theory]
    [InlineData("variance", "fixed-large", "fixedlarge")]
    [InlineData("variance", "fixed_small", "fixedsmall")]
    [InlineData("variance", "learnedrange", "learned-range")]
    [InlineData("variance", "learned_range", "learned-range")]
    [InlineData("variance", "Learned-Range", "learned-range")]
    [InlineData("prediction", "epsilon", "eps")]
    [InlineData("prediction", "start", "x0")]
    [InlineData("prediction", "velocity", "v")]
    [InlineData("prediction", "mean", "mu")]
    [InlineData("loss", "mse", "simple")]
    [InlineData("loss", "kl", "vlb")]
    [InlineData("timestep_sampler", "loss-aware", "importance")]
    [InlineData("schedule", " Cosine ", "cosine")]
    [InlineData("device", "CUDA:1", "cuda:1")]
    [InlineData("device", "Cpu", "cpu")]
    [InlineData("eval_classifier", "fashion_mnist", "fashion-mnist")]
    [InlineData("eval_classifier", "MNIST", "mnist")]
    [InlineData("eval_classifier", "runs/clf.safetensors", "runs/clf.safetensors")]
    public void EarlierSpellingsReadAndAreWrittenAsTheRunsAlwaysWroteThem(string key, string spelling, string written)
    {
        var json = DefaultRunJson.Replace($"\"{key}\": \"{Default(key)}\"", $"\"{key}\": \"{spelling}\"", StringComparison.Ordinal);
        Assert.NotEqual(DefaultRunJson, json);
        var c = TrainConfig.FromJson(json, "config.json");
        Assert.Equal(written, JsonDocument.Parse(c.ToJson()).RootElement.GetProperty(key).GetString());
    }

    private static string Default(string key) =>
        JsonDocument.Parse(DefaultRunJson).RootElement.GetProperty(key).GetString()!;

    [Theory]
    [InlineData("schedule", "quadratic", "linear, cosine or sigmoid")]
    [InlineData("variance", "fixed", "fixedlarge, fixedsmall, learned or learned-range")]
    [InlineData("prediction", "noise", "eps, x0, v or mu")]
    [InlineData("loss", "l1", "simple, vlb or hybrid")]
    [InlineData("timestep_sampler", "random", "uniform or importance")]
    [InlineData("device", "tpu", "cpu, cuda, cuda:N or auto")]
    public void AnUnknownNameFailsWhereTheConfigurationIsReadNamingTheSettingAndTheFile(string key, string bad, string expected)
    {
        var json = DefaultRunJson.Replace($"\"{key}\": \"{Default(key)}\"", $"\"{key}\": \"{bad}\"", StringComparison.Ordinal);
        var e = Assert.Throws<DdpmException>(() => TrainConfig.FromJson(json, "runs/a/config.json"));
        Assert.Equal(key, e.Setting);
        Assert.Equal($"{key} {bad}: expected {expected} (in runs/a/config.json)", e.Message);
    }

    [Fact]
    public void TheSettingsAreTheJsonKeysEachDeclaredOnce()
    {
        var keys = JsonDocument.Parse(new TrainConfig().ToJson()).RootElement.EnumerateObject().Select(p => p.Name).ToList();
        Assert.Equal(keys, TrainConfig.Settings.Select(s => s.Key));
        foreach (var p in typeof(TrainConfig).GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance))
            Assert.Single(p.GetCustomAttributes(typeof(SettingAttribute), inherit: false));
        Assert.All(TrainConfig.Settings, s => Assert.False(string.IsNullOrWhiteSpace(s.Help), s.Key));
    }

    [Fact]
    public void AutoChoosesTheClassifierByTheWrittenRule()
    {
        var auto = EvalClassifierChoice.Auto;
        Assert.Equal(EvalClassifierChoice.FashionMnist, auto.Resolve("/d/Fashion/train-images-idx3-ubyte.gz", 1));
        Assert.Equal(EvalClassifierChoice.FashionMnist, auto.Resolve("/d/fashion-mnist", 3)); // the path wins over the channels
        Assert.Equal(EvalClassifierChoice.Mnist, auto.Resolve("/d/mnist-10k/images-idx3-ubyte.gz", 1));
        Assert.Null(auto.Resolve("/d/cifar", 3));
        Assert.Equal("fashion-mnist (auto: the data path contains 'fashion')", auto.Describe("/d/fashion", 1));
        Assert.Equal("mnist", EvalClassifierChoice.Mnist.Describe("/d/fashion", 1)); // an explicit choice is kept
    }
}

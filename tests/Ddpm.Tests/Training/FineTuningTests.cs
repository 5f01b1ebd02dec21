using Ddpm.Diffusion;
using Ddpm.Interop;
using Ddpm.Runs;
using Ddpm.Training;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

/// <summary>
/// init_from: a run starts from pretrained weights (here a run of this project) in both the network and its EMA, with
/// a new optimizer, the checkpoint's network and diffusion settings; resuming it is as exact as resuming any run.
/// </summary>
public class FineTuningTests
{
    /// <summary>A finished 3-step run whose diffusion settings differ from the tiny run's: cosine, fixedsmall, no threshold.</summary>
    private static (string Run, Dictionary<string, Tensor> Ema, Dictionary<string, Tensor> Model) SourceRun(string dir, Ddpm.Data.ImageDataset data)
    {
        var run = Path.Combine(dir, "source");
        var c = TestUtil.TinyConfig(steps: 3);
        c.Schedule = ScheduleKind.Cosine;
        c.Variance = VarianceType.FixedSmall;
        c.SampleThreshold = "none";
        c.EvalThreshold = "none";
        using var t = Trainer.Start(c, run, data);
        t.Run();
        return (run, TestUtil.Parameters(t.EmaModel), TestUtil.Parameters(t.Model));
    }

    /// <summary>A tiny run of today's defaults (v, linear, fixedlarge) that starts from <paramref name="source"/>.</summary>
    private static TrainConfig FineTune(string source, long steps)
    {
        var c = TestUtil.TinyConfig(steps);
        c.Model = null;
        c.Prediction = PredictionType.Velocity;
        c.InitFrom = source;
        FineTuning.ApplySettings(c);
        return c;
    }

    private static void AssertEqual(Dictionary<string, Tensor> expected, nn.Module module, string what)
    {
        var actual = module.named_parameters().ToList();
        Assert.Equal(expected.Count, actual.Count);
        foreach (var (name, p) in actual) Assert.True(p.equal(expected[name]).all().item<bool>(), $"{what} {name}");
    }

    [Fact]
    public void TheNetworkAndItsEmaStartFromTheCheckpointsEmaWeightsWithItsSettingsAndANewOptimizer()
    {
        var dir = TestUtil.TempDir();
        using var data = TestUtil.TinyData();
        var (source, ema, model) = SourceRun(dir, data);
        Assert.Contains(ema, p => !p.Value.equal(model[p.Key]).all().item<bool>()); // the EMA weights are not the network's

        var c = FineTune(source, steps: 2);
        using var t = Trainer.Start(c, Path.Combine(dir, "tuned"), data);
        Assert.Equal(0, t.Step);
        AssertEqual(ema, t.Model, "model");
        AssertEqual(ema, t.EmaModel, "ema");

        // The checkpoint's network and diffusion settings; the path as given.
        var sourceConfig = CheckpointStore.ReadState(CheckpointStore.Resolve(source)).Config;
        Assert.Equal(System.Text.Json.JsonSerializer.Serialize(sourceConfig.Model), System.Text.Json.JsonSerializer.Serialize(t.Config.Model));
        Assert.Equal((ScheduleKind.Cosine, 12, VarianceType.FixedSmall, PredictionType.Epsilon, "none", "none"),
            (t.Config.Schedule, t.Config.Timesteps, t.Config.Variance, t.Config.Prediction, t.Config.SampleThreshold, t.Config.EvalThreshold));
        Assert.Equal(source, TrainConfig.Load(Path.Combine(dir, "tuned", Trainer.ConfigFile)).InitFrom);
        Assert.Equal(PretrainedFormat.Run, t.InitializedFrom!.Format);
        Assert.Equal(3, t.InitializedFrom.Step);
        Assert.Equal(CheckpointStore.EmaFile, Path.GetFileName(t.InitializedFrom.WeightsFile));

        // A new optimizer: the first update is Adam's first (step 1) with the warm-up from its start.
        var first = t.TrainStep();
        Assert.Equal(c.LearningRate / c.WarmupSteps, first.LearningRate, 1e-15);
        var saved = t.SaveCheckpoint();
        var optimizer = Safetensors.LoadStateDict(Path.Combine(saved, CheckpointStore.OptimizerFile));
        Assert.Equal(1f, optimizer["state.0.step"].item<float>());
        var sourceOptimizer = Safetensors.LoadStateDict(Path.Combine(CheckpointStore.Resolve(source), CheckpointStore.OptimizerFile));
        Assert.Equal(3f, sourceOptimizer["state.0.step"].item<float>());
    }

    [Fact]
    public void WithoutAModelTheNetworkIsTheCheckpointsAndADifferentOneIsRefused()
    {
        var dir = TestUtil.TempDir();
        using var data = TestUtil.TinyData();
        var (source, ema, _) = SourceRun(dir, data);

        // Model null: the checkpoint's network; the diffusion settings are the caller's (ApplySettings not called).
        var c = TestUtil.TinyConfig(steps: 2);
        c.Model = null;
        c.InitFrom = source;
        using (var t = Trainer.Start(c, Path.Combine(dir, "a"), data))
            AssertEqual(ema, t.Model, "model");

        var other = FineTune(source, steps: 2);
        other.Model!.BaseChannels = 4;
        var e = Assert.Throws<DdpmException>(() => Trainer.Start(other, Path.Combine(dir, "b"), data));
        Assert.Equal("init_from", e.Setting);
        Assert.Contains("base_channels 8 in the checkpoint, 4 in the run", e.Message);
        Assert.False(Directory.Exists(Path.Combine(dir, "b")));

        // A setting that leaves every shape alone (the same weights would load) is a different network all the same.
        var eps = FineTune(source, steps: 2);
        eps.Model!.NormEps = 1e-5;
        e = Assert.Throws<DdpmException>(() => Trainer.Start(eps, Path.Combine(dir, "b"), data));
        Assert.Contains("norm_eps 1E-06 in the checkpoint, 1E-05 in the run", e.Message);

        var missing = FineTune(source, steps: 2);
        missing.InitFrom = Path.Combine(dir, "absent");
        e = Assert.Throws<DdpmException>(() => Trainer.Start(missing, Path.Combine(dir, "c"), data));
        Assert.Equal($"init_from {missing.InitFrom}: no such file or folder", e.Message);
    }

    [Fact]
    public void AResumedFineTuningRunEqualsAnUninterruptedOne()
    {
        var dir = TestUtil.TempDir();
        using var data = TestUtil.TinyData();
        var (source, _, _) = SourceRun(dir, data);
        Dictionary<string, Tensor> straight, straightEma;
        using (var t = Trainer.Start(FineTune(source, steps: 4), Path.Combine(dir, "a"), data))
        {
            t.Run();
            straight = TestUtil.Parameters(t.Model);
            straightEma = TestUtil.Parameters(t.EmaModel);
        }
        using (var t = Trainer.Start(FineTune(source, steps: 2), Path.Combine(dir, "b"), data))
            t.Run();
        using (var t = Trainer.Resume(Path.Combine(dir, "b"), data, c => c.Steps = 4))
        {
            Assert.Equal(2, t.Step);
            Assert.Null(t.InitializedFrom); // the run's own checkpoint, not the pretrained weights again
            Assert.Equal(4, t.Run().Step);
            AssertEqual(straight, t.Model, "model");
            AssertEqual(straightEma, t.EmaModel, "ema");
        }
        Assert.Equal(MetricsLog.Read(Path.Combine(dir, "a")).Select(r => r.Loss), MetricsLog.Read(Path.Combine(dir, "b")).Select(r => r.Loss));
    }

    [Fact]
    public void ACheckpointWithoutDataReadsButTrainingItNeedsData()
    {
        var dir = TestUtil.TempDir();
        using var data = TestUtil.TinyData();
        var (source, _, _) = SourceRun(dir, data);
        var checkpoint = CheckpointStore.Resolve(source);
        ClearData(source);

        Assert.Equal("", CheckpointStore.ReadState(checkpoint).Config.Data); // sampling needs no data
        using (var pretrained = PretrainedModel.Open(source)) Assert.Equal(3, pretrained.Step);
        var e = Assert.Throws<DdpmException>(() => Trainer.Resume(source, data, c => c.Steps = 4));
        Assert.Equal("data", e.Setting);
        using var resumed = Trainer.Resume(source, data, c => { c.Steps = 4; c.Data = "synthetic"; });
        Assert.Equal(3, resumed.Step);
    }

    /// <summary>Makes <paramref name="run"/> look converted: its config.json and its checkpoints' states name no data.</summary>
    internal static void ClearData(string run)
    {
        foreach (var file in Directory.EnumerateFiles(run, "*.json", SearchOption.AllDirectories)
                     .Where(f => Path.GetFileName(f) is Trainer.ConfigFile or CheckpointStore.StateFile))
        {
            var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(file))!.AsObject();
            var config = Path.GetFileName(file) == Trainer.ConfigFile ? node : node["config"]!.AsObject();
            Assert.NotNull(config["data"]);
            config["data"] = "";
            File.WriteAllText(file, node.ToJsonString());
        }
    }
}

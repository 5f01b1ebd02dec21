using Ddpm.Configuration;
using System.Text.Json.Nodes;
using Ddpm.Diffusion;
using Ddpm.Models;
using Ddpm.Runs;
using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

public class DiffusionOptionsTests
{
    [Fact]
    public void OldConfigFilesLoadWithTodaysBehaviour()
    {
        // A config.json written before the prediction, loss and sampler fields existed.
        var json = JsonNode.Parse(TestUtil.TinyConfig().ToJson())!.AsObject();
        foreach (var key in new[] { "prediction", "loss", "vlb_weight", "timestep_sampler", "recipe" })
            Assert.True(json.Remove(key), key);
        var c = TrainConfig.FromJson(json.ToJsonString(), "old");
        c.Validate();
        using var d = DiffusionFactory.Diffusion(c);
        Assert.Equal(PredictionType.Epsilon, d.Prediction);
        Assert.Equal(VarianceType.FixedLarge, d.VarianceType);
        Assert.Equal(LossType.Simple, d.Loss);
        Assert.IsType<UniformTimestepSampler>(TimestepSamplers.For(c));
        // The grid sampler too: before sample_sampler and sample_steps existed, grids were drawn by the ancestral sampler
        // over all T steps. Today's defaults (v, the ancestral sampler over 250 steps) apply where no file is read.
        Assert.True(json.Remove("sample_sampler"));
        Assert.True(json.Remove("sample_steps"));
        var old = TrainConfig.FromJson(json.ToJsonString(), "old");
        Assert.Equal(("ddpm", (int?)0, 0), (old.SampleSampler, old.SampleSteps, old.GridSteps()));
        var today = new TrainConfig();
        Assert.Equal((PredictionType.Velocity, "ddpm", (int?)null, 250), (today.Prediction, today.SampleSampler, today.SampleSteps, today.GridSteps()));
    }

    [Fact]
    public void RecipesSetTheirDiffusionAndLeaveTheRest()
    {
        var c = new TrainConfig { LearningRate = 3e-4, Timesteps = 500, Schedule = ScheduleKind.Sigmoid };
        TrainRecipes.Apply(c, "improved");
        Assert.Equal((ScheduleKind.Cosine, PredictionType.Epsilon, VarianceType.LearnedRange, LossType.Hybrid, TimestepSamplerKind.Uniform), (c.Schedule, c.Prediction, c.Variance, c.Loss, c.TimestepSampler));
        Assert.Equal(0.001, c.VlbWeight);
        Assert.Equal((3e-4, 500), (c.LearningRate, c.Timesteps));
        c.LossWeighting = LossWeightingKind.MinSnr;
        c.LossWeightGamma = 3;
        c.Prediction = PredictionType.Velocity;
        c.SampleSampler = "dpm-solver";
        c.SampleSteps = 15;
        TrainRecipes.Apply(c, "ho2020");
        Assert.Equal((ScheduleKind.Linear, PredictionType.Epsilon, VarianceType.FixedLarge, LossType.Simple, 1000), (c.Schedule, c.Prediction, c.Variance, c.Loss, c.Timesteps));
        Assert.Equal((1e-4, 0.02), (c.BetaStart, c.BetaEnd));
        // The paper's objective (no weighting) and its sampler for the grids, whatever the defaults are.
        Assert.Equal((LossWeightingKind.None, (double?)null), (c.LossWeighting, c.LossWeightGamma));
        Assert.Equal(("ddpm", (int?)0, "clip"), (c.SampleSampler, c.SampleSteps, c.SampleThreshold));
        c.LossWeighting = LossWeightingKind.P2;
        TrainRecipes.Apply(c, "improved");
        Assert.Equal(LossWeightingKind.None, c.LossWeighting);
        Assert.Throws<DdpmException>(() => TrainRecipes.Apply(c, "ddim"));
    }

    [Theory]
    [InlineData("learned", "simple")]
    [InlineData("learned-range", "simple")]
    [InlineData("fixedlarge", "hybrid")]
    public void ImpossibleCombinationsAreRejected(string variance, string loss)
    {
        var c = TestUtil.TinyConfig();
        c.Variance = SettingNames.Variance.Parse(variance);
        c.Loss = SettingNames.Loss.Parse(loss);
        var e = Assert.Throws<DdpmException>(c.Validate);
        Assert.Equal(loss == "hybrid" ? "loss" : "variance", e.Setting);
        // The diffusion itself applies the same one check.
        Assert.Equal(e.Message, Assert.Throws<DdpmException>(() => DiffusionFactory.Diffusion(c)).Message);
    }

    [Fact]
    public void LearnedVarianceDoublesTheNetworksOutputChannels()
    {
        using var data = TestUtil.TinyData(channels: 3);
        var c = TestUtil.TinyConfig();
        c.Model = TestUtil.TinyUNet(channels: 3);
        c.Variance = VarianceType.LearnedRange;
        c.Loss = LossType.Hybrid;
        var resolved = Trainer.Resolve(c, data);
        Assert.Equal(6, resolved.Model!.EffectiveOutChannels);
        using var net = new UNet(resolved.Model);
        using var scope = NewDisposeScope();
        Assert.Equal(new long[] { 2, 6, 8, 8 }, net.call(zeros(2, 3, 8, 8), tensor(new long[] { 0, 5 })).shape);

        c.Variance = VarianceType.FixedLarge;
        c.Loss = LossType.Simple;
        Assert.Equal(3, Trainer.Resolve(c, data).Model!.EffectiveOutChannels);
        c.Model.OutChannels = 6;
        Assert.Throws<DdpmException>(() => Trainer.Resolve(c, data));
    }

    private static TrainConfig ImportanceConfig(long steps)
    {
        var c = TestUtil.TinyConfig(steps);
        c.Timesteps = 3; // warmed up after 30 losses: step 8 at batch 4
        c.TimestepSampler = TimestepSamplerKind.Importance;
        c.Variance = VarianceType.Learned;
        c.Loss = LossType.Vlb;
        c.Prediction = PredictionType.Velocity;
        return c;
    }

    [Fact]
    public void ImportanceSampledRunResumesExactly()
    {
        var dir = TestUtil.TempDir();
        using var data = TestUtil.TinyData();
        Dictionary<string, Tensor> straight;
        List<double> losses;
        using (var t = Trainer.Start(ImportanceConfig(14), Path.Combine(dir, "a"), data))
        {
            losses = Enumerable.Range(0, 14).Select(_ => t.TrainStep().Loss).ToList();
            straight = TestUtil.Parameters(t.Model);
        }
        using (var t = Trainer.Start(ImportanceConfig(6), Path.Combine(dir, "b"), data))
        {
            for (int i = 0; i < 6; i++) Assert.Equal(losses[i], t.TrainStep().Loss);
            t.SaveCheckpoint();
        }
        var state = CheckpointStore.ReadState(CheckpointStore.Resolve(Path.Combine(dir, "b")));
        Assert.NotNull(state.TimestepSampler);
        Assert.Equal(24, state.TimestepSampler!.Counts.Sum());
        using (var t = Trainer.Resume(Path.Combine(dir, "b"), data, c => c.Steps = 14))
        {
            for (int i = 6; i < 14; i++) Assert.Equal(losses[i], t.TrainStep().Loss);
            foreach (var (name, p) in t.Model.named_parameters()) Assert.True(p.equal(straight[name]).all().item<bool>(), name);
            // By the end every t had its 10 losses, so the last steps drew t by importance.
            var end = CheckpointStore.ReadState(t.SaveCheckpoint());
            Assert.All(end.TimestepSampler!.Counts, n => Assert.Equal(LossAwareTimestepSampler.HistoryPerTerm, n));
        }
        Assert.True(losses.All(double.IsFinite));
    }
}

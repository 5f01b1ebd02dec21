using Ddpm.Metrics.Evaluation;
using Ddpm.Pipelines;
using Ddpm.Runs;
using Ddpm.Runtime;
using Ddpm.Tests.Metrics;
using Ddpm.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

/// <summary>
/// A network of the user's own, not the U-Net: three convolutions with t added as a learned per-channel bias, and
/// dropout so that resuming must reproduce the per-step random draws. Its convolutions go through SafeConv like the
/// library's own (libtorch's CPU input gradient of narrow convolutions is wrong on some machines; see the README).
/// </summary>
internal sealed class TinyConvNet : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Conv2d conv_in;
    private readonly Conv2d conv_mid;
    private readonly Conv2d conv_out;
    private readonly Embedding time;
    private readonly Dropout dropout;

    public TinyConvNet(int channels, int timesteps, int hidden = 8) : base(nameof(TinyConvNet))
    {
        conv_in = nn.Conv2d(channels, hidden, 3, padding: 1);
        conv_mid = nn.Conv2d(hidden, hidden, 3, padding: 1);
        conv_out = nn.Conv2d(hidden, channels, 3, padding: 1);
        time = nn.Embedding(timesteps, hidden);
        dropout = nn.Dropout(0.2);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor t)
    {
        using var scope = NewDisposeScope();
        var bias = time.call(t).unsqueeze(-1).unsqueeze(-1);
        var h = nn.functional.silu(SafeConv.Forward(conv_in, x) + bias);
        h = dropout.call(nn.functional.silu(SafeConv.Forward(conv_mid, h)));
        return SafeConv.Forward(conv_out, h).MoveToOuterDisposeScope();
    }
}

/// <summary>Trainer, checkpoints, pipeline, likelihood and the training-time evaluator with a module that is not the U-Net.</summary>
public class CustomModelTests
{
    private static TrainConfig Config(long steps)
    {
        var c = TestUtil.TinyConfig(steps); // names a U-Net, which the factory replaces
        c.CheckpointEvery = 2;
        c.SampleSampler = "ddim";
        c.SampleSteps = 2;
        return c;
    }

    private static void AssertSameParameters(nn.Module expected, nn.Module actual, string what)
    {
        var e = TestUtil.Parameters(expected);
        var names = 0;
        foreach (var (name, p) in actual.named_parameters())
        {
            Assert.True(p.equal(e[name]).all().item<bool>(), $"{what} {name}");
            names++;
        }
        Assert.Equal(e.Count, names);
    }

    /// <summary>Runs the trainer and returns the losses its run folder logged (one line per step: log_every 1).</summary>
    private static List<(long, double)> Losses(Trainer t)
    {
        t.Run();
        return MetricsLog.Read(t.RunDir).Select(r => (r.Step, r.Loss)).ToList();
    }

    [Fact]
    public void ACustomNetworkTrainsResumesExactlyAndSamplesThroughThePipeline()
    {
        using var scope = NewDisposeScope();
        using var data = TestUtil.TinyData();
        var dir = TestUtil.TempDir();
        var config = Config(steps: 4);
        ModelFactory factory = () => new TinyConvNet(1, config.Timesteps);

        using var straight = Trainer.Start(config, Path.Combine(dir, "straight"), data, factory);
        Assert.IsType<TinyConvNet>(straight.Model);
        Assert.IsType<TinyConvNet>(straight.EmaModel);
        Assert.Null(straight.Config.Model); // what tells a custom network's checkpoint from a U-Net's
        var straightLosses = Losses(straight);
        Assert.Equal(4, straight.Step);
        Assert.All(straightLosses, l => Assert.True(double.IsFinite(l.Item2)));

        // The same run stopped after step 2 and resumed with the same factory: bit-for-bit the same weights and losses.
        var run = Path.Combine(dir, "resumed");
        List<(long, double)> losses;
        using (var first = Trainer.Start(Config(steps: 2), run, data, factory))
            losses = Losses(first);
        var noFactory = Assert.Throws<DdpmException>(() => Trainer.Resume(run, data, c => c.Steps = 4));
        Assert.Contains("custom network", noFactory.Message);
        Assert.DoesNotContain('\n', noFactory.Message);
        using (var resumed = Trainer.Resume(run, data, c => c.Steps = 4, factory))
        {
            Assert.Equal(2, resumed.Step);
            losses = Losses(resumed); // the resumed run's log: the first run's lines, then its own
            AssertSameParameters(straight.Model, resumed.Model, "model");
            AssertSameParameters(straight.EmaModel, resumed.EmaModel, "ema");
        }
        Assert.Equal(straightLosses, losses);

        // The pipeline loads the EMA state dict into the module the factory builds; without it, it says what is missing.
        var noModule = Assert.Throws<DdpmException>(() => DdpmPipeline.Load(run, CPU));
        Assert.Contains("model factory", noModule.Message);
        Assert.DoesNotContain('\n', noModule.Message);
        using var pipeline = DdpmPipeline.Load(run, CPU, model: factory);
        Assert.IsType<TinyConvNet>(pipeline.Model);
        Assert.False(pipeline.Model.training);
        AssertSameParameters(straight.EmaModel, pipeline.Model, "pipeline");
        Assert.Equal(new long[] { 3, 1, 8, 8 }, pipeline.ImageShape(3));
        var samples = pipeline.Sample(3, seed: 11, batchSize: 2);
        Assert.Equal(new long[] { 3, 1, 8, 8 }, samples.shape);
        // The ancestral sampler's last step returns the clipped x_0 prediction (beta~_0 = 0): inside [-1, 1].
        Assert.True(samples.abs().max().item<float>() <= 1f);
        // Batch i is drawn with seed + i: the third image (batch 1) is the first of a run seeded 12.
        var again = pipeline.Sample(1, seed: 12, batchSize: 2);
        Assert.True(samples[2].equal(again[0]).all().item<bool>());

        // The likelihood bound through the pipeline: a finite positive number of bits per dimension per image.
        var report = LikelihoodEvaluator.Evaluate(pipeline, data.Images.narrow(0, 0, 2), batchSize: 2, seed: 1);
        Assert.True(double.IsFinite(report.BitsPerDim.Mean) && report.BitsPerDim.Mean > 0, $"bpd {report.BitsPerDim.Mean}");
    }

    [Fact]
    public void TheTrainingTimeEvaluatorScoresACustomNetworkAndKeepsTheBestCheckpoint()
    {
        using var scope = NewDisposeScope();
        using var data = TestUtil.TinyData();
        var run = Path.Combine(TestUtil.TempDir(), "run");
        var config = Config(steps: 2);
        config.EvalEvery = 2;
        config.EvalCount = 10;
        config.EvalRealCount = 20;
        int calls = 0;
        using var t = Trainer.Start(config, run, data, () => new TinyConvNet(1, config.Timesteps));
        // A one-step "sampler": the model's output at t = T-1 from seeded noise, so the figures depend on the network.
        t.Evaluator = new TrainingEvaluator(t.Config, data, new[] { new EvalMetric("fd_pixels", new PixelStatsExtractor()) },
            (model, diffusion, shape, seed, ct) =>
            {
                calls++;
                Assert.IsType<TinyConvNet>(model);
                using var gen = new Generator((ulong)seed, CPU);
                using var _ = no_grad();
                var x = randn(shape, generator: gen);
                return model.call(x, full(new long[] { shape[0] }, diffusion.Timesteps - 1, dtype: ScalarType.Int64)).clamp(-1, 1);
            });
        var result = t.Run();
        Assert.Equal(2, result.Step);
        Assert.True(calls > 0);
        var best = CheckpointStore.ReadBest(run);
        Assert.NotNull(best);
        Assert.Equal("fd_pixels", best.Metric);
        Assert.True(double.IsFinite(best.Value) && best.Value >= 0);
        Assert.Equal(2, best.Step);
    }

    [Fact]
    public void AFactoryMustBuildANewModuleEachCall()
    {
        using var data = TestUtil.TinyData();
        var shared = new TinyConvNet(1, 12);
        var e = Assert.Throws<DdpmException>(() => Trainer.Start(Config(2), Path.Combine(TestUtil.TempDir(), "run"), data, () => shared));
        Assert.Contains("new one on each call", e.Message);
    }
}

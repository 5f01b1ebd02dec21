using Ddpm.Metrics.Evaluation;
using Ddpm.Tests.Sampling;
using Ddpm.Configuration;
using Ddpm.Pipelines;
using Ddpm.Runs;
using Ddpm.Sampling;
using Ddpm.Tests.Metrics;
using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

public class EvalDuringTrainingTests
{
    private static TrainingEvaluator FakeEvaluator(TrainConfig config, Ddpm.Data.ImageDataset data) =>
        new(config, data, new[] { new EvalMetric("fd_test", new PixelStatsExtractor()) }, (model, diffusion, shape, seed, ct) =>
        {
            using var r = TestSampling.Ancestral(diffusion, model, shape, new SampleOptions { Seed = seed }, CPU, null, ct);
            return r.Samples.detach().clone();
        });

    [Fact]
    public void EvaluationsAreLoggedAndTheBestCheckpointIsKept()
    {
        var dir = Path.Combine(TestUtil.TempDir(), "run");
        var config = TestUtil.TinyConfig(steps: 6);
        config.EvalEvery = 2;
        config.EvalCount = 10;
        config.EvalRealCount = 24;
        config.CheckpointEvery = 0;
        config.KeepCheckpoints = 1;
        using var data = TestUtil.TinyData(count: 24);
        using (var t = Trainer.Start(config, dir, data))
        {
            t.Evaluator = FakeEvaluator(t.Config, data);
            t.Run();
        }

        var evals = MetricsLog.ReadEvals(dir);
        Assert.Equal(new long[] { 2, 4, 6 }, evals.Select(e => e.Step).ToArray());
        Assert.All(evals, e => Assert.Equal(10, e.EvalCount));
        Assert.All(evals, e => Assert.True(e.Eval["fd_test"] >= 0 && e.Eval["fd_test_floor"] >= 0));
        // The floor comes from the same real images every time.
        Assert.Single(evals.Select(e => e.Eval["fd_test_floor"]).Distinct());
        Assert.Equal(6, MetricsLog.Read(dir).Count); // training lines only (log every step)

        var best = CheckpointStore.ReadBest(dir)!;
        var bestEval = evals.MinBy(e => e.Eval["fd_test"])!;
        Assert.Equal("fd_test", best.Metric);
        Assert.Equal(bestEval.Step, best.Step);
        Assert.Equal(bestEval.Eval["fd_test"], best.Value);
        var bestDir = Path.Combine(dir, "checkpoints", "best");
        Assert.Equal(best.Step, CheckpointStore.ReadState(bestDir).Step);
        using var pipe = DdpmPipeline.Load(bestDir, CPU);
        Assert.Equal(best.Step, pipe.Step);
        // keep-checkpoints 1 prunes the step folders but never the best one
        Assert.Single(Directory.GetDirectories(Path.Combine(dir, "checkpoints"), "step_*"));
    }

    [Fact]
    public void EvaluationIsDeterministicForTheSameWeights()
    {
        var config = TestUtil.TinyConfig(steps: 2);
        config.EvalEvery = 1;
        config.EvalCount = 10;
        config.EvalRealCount = 20;
        using var data = TestUtil.TinyData(count: 24);
        using var t = Trainer.Start(config, Path.Combine(TestUtil.TempDir(), "run"), data);
        t.Evaluator = FakeEvaluator(t.Config, data);
        var first = t.Evaluate();
        var second = t.Evaluate();
        Assert.Equal(first["fd_test"], second["fd_test"]);
        t.TrainStep();
        Assert.NotEqual(first["fd_test"], t.Evaluate()["fd_test"]);
    }

    [Fact]
    public void EvalSettingsAreChecked()
    {
        var config = TestUtil.TinyConfig();
        config.EvalEvery = 1;
        config.EvalCount = 100;
        config.EvalRealCount = 150;
        var e = Assert.Throws<DdpmException>(config.Validate);
        Assert.StartsWith("eval_real_count 150:", e.Message);

        config.EvalRealCount = 200; // valid, but the data have only 24 images: the floor cannot be computed
        using var data = TestUtil.TinyData(count: 24);
        using var t = Trainer.Start(config, Path.Combine(TestUtil.TempDir(), "run"), data);
        t.Evaluator = FakeEvaluator(t.Config, data);
        var err = Assert.Throws<DdpmException>(() => t.Evaluate());
        Assert.StartsWith("eval_count 100:", err.Message);
    }

    [Theory]
    [InlineData("auto", "/data/fashion-mnist/train-images-idx3-ubyte.gz", 1, "fashion-mnist")]
    [InlineData("auto", "/data/mnist-10k/images-idx3-ubyte.gz", 1, "mnist")]
    [InlineData("auto", "/data/cifar", 3, null)]
    [InlineData("none", "/data/mnist", 1, null)]
    [InlineData("my.safetensors", "/data/cifar", 3, "my.safetensors")]
    public void ClassifierChoice(string setting, string data, int channels, string? expected) =>
        Assert.Equal(expected, EvalClassifierChoice.Parse(setting).Resolve(data, channels)?.ToString());
}

using Ddpm.Metrics.Evaluation;
using Ddpm.Runs;
using Ddpm.Configuration;
using Ddpm.Runtime;
using Ddpm.Sampling;
using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

/// <summary>
/// <see cref="EvalMetrics.CreateEvaluator"/> (what <c>--eval-every</c> scores with) and the thread setting: each configures
/// what its documentation says.
/// </summary>
public class EvalMetricsTests
{
    private static TrainConfig EvalConfig()
    {
        var c = TestUtil.TinyConfig(steps: 1);
        c.EvalCount = 10;
        c.EvalRealCount = 20;
        c.EvalSampler = "ddim";
        c.EvalSteps = 3;
        return c;
    }

    [Fact]
    public void TheShippedClassifierScoresTheEmaSamplesWithFiguresInTheirRanges()
    {
        using var scope = NewDisposeScope();
        using var data = TestUtil.TinyData(count: 24);
        var c = EvalConfig();
        c.EvalClassifier = EvalClassifierChoice.Mnist;
        using var t = Trainer.Start(c, Path.Combine(TestUtil.TempDir(), "run"), data);
        t.Evaluator = EvalMetrics.CreateEvaluator(t.Config, t.Data, t.Device); // as the CLI does for --eval-every
        var values = t.Evaluate();

        // The classifier only (no Inception weights given), so it is the metric that picks the best checkpoint.
        Assert.Equal("fd_classifier", t.Evaluator!.PrimaryMetric);
        Assert.Equal(new[] { "fd_classifier", "fd_classifier_class_imbalance", "fd_classifier_floor", "fd_classifier_score" }, values.Keys.Order(StringComparer.Ordinal));
        // Frechet distances are squared distances plus a trace of a PSD difference: >= 0 (up to float rounding).
        Assert.InRange(values["fd_classifier"], -1e-6, double.MaxValue);
        Assert.InRange(values["fd_classifier_floor"], -1e-6, double.MaxValue);
        // The score exp(E KL(p(y|x) || p(y))) lies in [1, classes] = [1, 10]; the total variation from the uniform
        // histogram of 10 classes lies in [0, 1 - 1/10].
        Assert.InRange(values["fd_classifier_score"], 1 - 1e-9, 10 + 1e-9);
        Assert.InRange(values["fd_classifier_class_imbalance"], 0, 0.9 + 1e-9);
    }

    [Fact]
    public void WithoutAClassifierOrInceptionWeightsThereIsNothingToScore()
    {
        using var data = TestUtil.TinyData(count: 24);
        var c = EvalConfig();
        c.EvalClassifier = EvalClassifierChoice.None;
        var e = Assert.Throws<DdpmException>(() => EvalMetrics.CreateEvaluator(c, data, CPU));
        Assert.Contains("no metric", e.Message);
        // "auto" on RGB data picks no classifier (EvalClassifierChoice.Resolve): the same.
        c.EvalClassifier = EvalClassifierChoice.Auto;
        using var rgb = TestUtil.TinyData(count: 24, channels: 3);
        Assert.Contains("no metric", Assert.Throws<DdpmException>(() => EvalMetrics.CreateEvaluator(c, rgb, CPU)).Message);
    }

    [Fact]
    public void InceptionWeightsWhenGivenAreLoadedForFid()
    {
        using var data = TestUtil.TinyData(count: 24);
        var c = EvalConfig();
        c.EvalClassifier = EvalClassifierChoice.Mnist;
        c.InceptionWeights = Path.Combine(TestUtil.TempDir(), "pt_inception-missing.pth");
        // The evaluator opens the weights it was given (and frees the classifier it had opened when they fail).
        var e = Assert.Throws<DdpmException>(() => EvalMetrics.CreateEvaluator(c, data, CPU));
        Assert.Contains(c.InceptionWeights, e.Message);
    }

    [Fact]
    public void TheEvaluationSamplerIsTheConfiguredOneWithItsSteps()
    {
        var c = EvalConfig();
        var ddim = Assert.IsType<DdimSampler>(EvalMetrics.Sampler(c));
        Assert.Equal(new DdimOptions { Steps = 3 }, ddim.Options);
        c.EvalSampler = "dpm-solver";
        c.EvalSteps = 0; // 0: the sampler's own default (null steps)
        Assert.Equal(new DpmSolverOptions(), Assert.IsType<DpmSolverSampler>(EvalMetrics.Sampler(c)).Options);
    }

    [Fact]
    public void SetThreadsSetsLibtorchsIntraOpThreadCount()
    {
        int before = get_num_threads();
        try
        {
            Assert.Equal(1, TorchRuntime.SetThreads(1));
            Assert.Equal(1, get_num_threads());
            // 0 (and anything below 1) means every core the process sees.
            Assert.Equal(Environment.ProcessorCount, TorchRuntime.SetThreads(0));
            Assert.Equal(Environment.ProcessorCount, get_num_threads());
        }
        finally
        {
            set_num_threads(before);
        }
    }
}

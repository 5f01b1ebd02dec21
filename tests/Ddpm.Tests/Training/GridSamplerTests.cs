using Ddpm.Runs;
using Ddpm.Tests.Sampling;
using Ddpm.Imaging;
using Ddpm.Runtime;
using Ddpm.Sampling;
using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

public class GridSamplerTests
{
    [Fact]
    public void GridUsesTheConfiguredSamplerAndItsStepCount()
    {
        var config = TestUtil.TinyConfig(steps: 1);
        config.SampleSampler = "dpm-solver";
        config.SampleSteps = 3;
        config.SampleCount = 4;
        using var data = TestUtil.TinyData(count: 8);
        using var t = Trainer.Start(config, Path.Combine(TestUtil.TempDir(), "run"), data);
        t.TrainStep();
        var steps = new List<int>();
        var path = t.SaveSampleGrid(Path.Combine(t.RunDir, "grid.png"), new SyncProgress<int>(steps.Add));
        Assert.Equal(3, steps.Max()); // three network calls, not T = 12
        using var grid = ImageIO.LoadPng(path);

        // The grid holds exactly what the sampler draws with the run's seed.
        using var expected = new DpmSolverSampler(new DpmSolverOptions { Steps = 3 })
            .Sample(t.Diffusion, t.EmaModel, new long[] { 4, 1, 8, 8 }, SamplingRun.Seeded(config.Seed));
        var tmp = Path.Combine(t.RunDir, "expected.png");
        ImageIO.SaveGrid(expected.Samples, tmp, scale: Trainer.GridScale(8));
        Assert.Equal(File.ReadAllBytes(tmp), File.ReadAllBytes(path));
    }

    /// <summary>
    /// Not given, the grid's steps are 250 for the ancestral sampler (respaced), all T when T is smaller, and the
    /// sampler's own default for the others; 0 is always the sampler's own default (all T for the ancestral one).
    /// </summary>
    [Theory]
    [InlineData("ddpm", null, 1000, 250)]
    [InlineData("ddpm", null, 12, 12)]
    [InlineData("ddpm", 0, 1000, 0)]
    [InlineData("ddpm", 40, 1000, 40)]
    [InlineData("dpm-solver", null, 1000, 0)]
    [InlineData("ddim", null, 1000, 0)]
    public void TheGridStepsDefaultTo250AncestralStepsAtMostT(string sampler, int? given, int timesteps, int expected)
    {
        var config = new TrainConfig { SampleSampler = sampler, SampleSteps = given, Timesteps = timesteps };
        config.Validate(requireData: false);
        Assert.Equal(expected, config.GridSteps());
    }

    /// <summary>The default grid of a run with T = 300: the ancestral sampler makes 250 network calls, not 300.</summary>
    [Fact]
    public void TheDefaultGridMakes250NetworkCalls()
    {
        var config = TestUtil.TinyConfig(steps: 1);
        config.SampleSampler = new TrainConfig().SampleSampler;
        config.SampleSteps = null;
        config.Timesteps = 300;
        config.SampleCount = 2;
        using var data = TestUtil.TinyData(count: 8);
        using var t = Trainer.Start(config, Path.Combine(TestUtil.TempDir(), "run"), data);
        t.TrainStep();
        var steps = new List<int>();
        t.SaveSampleGrid(Path.Combine(t.RunDir, "grid.png"), new SyncProgress<int>(steps.Add));
        Assert.Equal(250, steps.Max());
        Assert.Equal(250, steps.Count);
    }

    [Fact]
    public void UnknownGridSamplerIsAOneLineError()
    {
        var config = TestUtil.TinyConfig();
        config.SampleSampler = "euler";
        var e = Assert.Throws<DdpmException>(config.Validate);
        Assert.StartsWith("sample_sampler euler:", e.Message);
        config.SampleSampler = "ddim";
        config.SampleSteps = 13; // T = 12
        Assert.StartsWith("sample_steps 13:", Assert.Throws<DdpmException>(config.Validate).Message);
    }

    /// <summary>The grids' and the evaluation's samplers take the sampler group's settings from the run's configuration.</summary>
    [Fact]
    public void GridAndEvaluationSamplersTakeSpacingThresholdAndEtaFromTheConfiguration()
    {
        var config = TestUtil.TinyConfig(steps: 1);
        config.SampleSampler = "ddim";
        config.SampleSteps = 4;
        config.SampleSpacing = "trailing";
        config.SampleThreshold = "none";
        config.SampleEta = 0.5;
        config.EvalSampler = "dpm-solver";
        config.EvalSpacing = "karras";
        config.EvalThreshold = "dynamic";
        config.Validate();
        var grid = Assert.IsType<DdimSampler>(Trainer.GridSampler(config));
        Assert.Equal((4, TimestepSpacing.Trailing, X0Threshold.None, 0.5),
            (grid.Options.Steps, grid.Options.Spacing, grid.Options.Threshold, grid.Options.Eta));
        var eval = Assert.IsType<DpmSolverSampler>(Ddpm.Metrics.Evaluation.EvalMetrics.Sampler(config));
        Assert.Equal((TimestepSpacing.Karras, X0Threshold.Dynamic), (eval.Options.Spacing, eval.Options.Threshold));

        // The defaults: the ancestral sampler over 250 of the T = 1000 steps (all T are --recipe ho2020's or --sample-steps 0's).
        var defaults = Assert.IsType<AncestralSampler>(Trainer.GridSampler(new TrainConfig()));
        Assert.Equal(250, defaults.Timesteps(Ddpm.Diffusion.NoiseSchedule.Linear(1000)).Length);

        config.SampleSampler = "ddpm";
        var e = Assert.Throws<DdpmException>(config.Validate);
        Assert.Equal("sample_eta", e.Setting);
        config.SampleSampler = "ddim";
        config.EvalThreshold = "sometimes";
        Assert.Equal("eval_threshold", Assert.Throws<DdpmException>(config.Validate).Setting);
        var (code, _, err) = TestUtil.Cli("train", "--sample-eta", "0.5", "--steps", "1", "--output", Path.Combine(TestUtil.TempDir(), "r"));
        Assert.Equal(1, code);
        Assert.StartsWith("error: --sample-eta 0.5: applies to the ddim sampler only", err);
    }
}

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
}

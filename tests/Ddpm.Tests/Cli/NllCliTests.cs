using Ddpm.Diffusion;
using System.Text.Json;
using Ddpm.Cli;
using Ddpm.Data;
using Ddpm.Pipelines;
using Ddpm.Runs;
using Ddpm.Training;

namespace Ddpm.Tests.Cli;

public class NllCliTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => TestUtil.Cli(args);

    [Fact]
    public void NllOfATinyRunReportsTheBoundAndItsParts()
    {
        var dir = TestUtil.TempDir();
        var (idx, cfgPath) = TestUtil.WriteTinyRunInputs(dir, images: 8, steps: 2);
        var run = Path.Combine(dir, "run");
        var train = Run("train", "--config", cfgPath, "--run-dir", run, "--no-progress");
        Assert.True(train.Code == 0, train.Err + train.Out);

        var json = Path.Combine(dir, "out", "nll.json");
        // No --data: the run's training data.
        var nll = Run("nll", "--checkpoint", run, "--count", "5", "--batch-size", "2", "--output", json, "--no-progress");
        Assert.True(nll.Code == 0, nll.Err + nll.Out);
        Assert.Contains("bits/dim", nll.Out);
        Assert.Contains("N = 5, T = 12", nll.Out);
        Assert.Contains("prior", nll.Out);
        Assert.Contains("decoder", nll.Out);

        var report = NllReport.FromJson(File.ReadAllText(json));
        Assert.Equal(5, report.Count);
        Assert.Equal(12, report.Timesteps);
        Assert.Equal(64, report.Dims);
        Assert.True(report.Ema);
        Assert.Equal(5, report.PerImage.Length);
        Assert.Equal(12, report.TermsByTimestep.Length);
        Assert.True(report.BitsPerDim.Mean > 0 && double.IsFinite(report.BitsPerDim.Mean));
        Assert.True(report.BitsPerDim.StandardError > 0);
        Assert.Equal(report.Prior.Mean + report.Kl.Mean + report.Decoder.Mean, report.BitsPerDim.Mean, 9);
        Assert.Equal(report.TermsByTimestep[0], report.Decoder.Mean, 9);
        Assert.Equal(report.TermsByTimestep.Skip(1).Sum(), report.Kl.Mean, 9);
        using (var doc = JsonDocument.Parse(File.ReadAllText(json)))
            Assert.True(doc.RootElement.GetProperty("bits_per_dim").TryGetProperty("standard_error", out _));

        // Same seed and batch size: the same numbers, with or without the EMA weights named explicitly.
        var again = Run("nll", "--checkpoint", run, "--data", idx, "--count", "5", "--batch-size", "2", "--output", json + "2", "--no-progress");
        Assert.True(again.Code == 0, again.Err);
        Assert.Equal(report.PerImage, NllReport.FromJson(File.ReadAllText(json + "2")).PerImage);

        var tooMany = Run("nll", "--checkpoint", run, "--count", "9", "--output", json, "--no-progress");
        Assert.Equal(1, tooMany.Code);
        Assert.Contains("--count 9", tooMany.Err);
        Assert.Single(tooMany.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void ImprovedRecipeTrainsSamplesAndMeasuresALearnedVarianceModel()
    {
        var dir = TestUtil.TempDir();
        var (_, cfgPath) = TestUtil.WriteTinyRunInputs(dir, images: 8, steps: 2);
        var run = Path.Combine(dir, "run");
        // The recipe's settings, with T from the file and one option overridden explicitly.
        var train = Run("train", "--config", cfgPath, "--recipe", "improved", "--prediction", "v", "--run-dir", run, "--no-progress");
        Assert.True(train.Code == 0, train.Err + train.Out);
        Assert.Contains("variance learned-range, loss hybrid", train.Out);
        var saved = TrainConfig.Load(Path.Combine(run, Trainer.ConfigFile));
        Assert.Equal((ScheduleKind.Cosine, PredictionType.Velocity, VarianceType.LearnedRange, LossType.Hybrid, "improved", 12), (saved.Schedule, saved.Prediction, saved.Variance, saved.Loss, saved.Recipe, saved.Timesteps));
        Assert.Equal(2, saved.Model!.EffectiveOutChannels);

        var grid = Path.Combine(dir, "grid.png");
        var sample = Run("sample", "--checkpoint", run, "--count", "2", "--output", grid, "--no-progress");
        Assert.True(sample.Code == 0, sample.Err);
        var json = Path.Combine(dir, "nll.json");
        var nll = Run("nll", "--checkpoint", run, "--count", "3", "--output", json, "--no-progress");
        Assert.True(nll.Code == 0, nll.Err);
        Assert.Contains("LearnedRange", nll.Out);
        var report = NllReport.FromJson(File.ReadAllText(json));
        Assert.True(double.IsFinite(report.BitsPerDim.Mean) && report.BitsPerDim.Mean > 0);

        var resume = Run("train", "--resume", run, "--recipe", "ho2020");
        Assert.Equal(1, resume.Code);
        Assert.Contains("--recipe", resume.Err);
    }

    [Theory]
    [InlineData("--variance", "learned", "--loss", "simple")]
    [InlineData("--loss", "hybrid", "--variance", "fixedsmall")]
    [InlineData("--prediction", "z", "--loss", "simple")]
    [InlineData("--timestep-sampler", "random", "--loss", "simple")]
    [InlineData("--recipe", "ddim", "--loss", "simple")]
    public void BadDiffusionOptionsAreOneLineErrors(params string[] args)
    {
        var (code, _, err) = Run(new[] { "train", "--steps", "1" }.Concat(args).ToArray());
        Assert.Equal(1, code);
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: --", err);
    }
}

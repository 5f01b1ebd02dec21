using System.Globalization;
using System.Text.Json;
using Ddpm.Cli;
using Ddpm.Data;
using Ddpm.Diffusion;
using Ddpm.Imaging;
using Ddpm.Runs;
using Ddpm.Training;

namespace Ddpm.Tests.Cli;

public class CliTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => TestUtil.Cli(args);

    [Fact]
    public void ScheduleCsvReadsBackAsTheSameDoubles()
    {
        var (code, output, err) = Run("schedule", "--schedule", "cosine", "--timesteps", "50", "--format", "csv");
        Assert.True(code == 0, err);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("t,beta,alpha_bar,posterior_variance,posterior_log_variance_clipped,posterior_mean_coef1,posterior_mean_coef2", lines[0]);
        Assert.Equal(51, lines.Length);
        var s = NoiseSchedule.Cosine(50);
        for (int t = 0; t < 50; t++)
        {
            var f = lines[t + 1].Split(',');
            Assert.Equal(t, int.Parse(f[0], CultureInfo.InvariantCulture));
            Assert.Equal(s.Betas[t], double.Parse(f[1], CultureInfo.InvariantCulture));
            Assert.Equal(s.AlphasCumprod[t], double.Parse(f[2], CultureInfo.InvariantCulture));
            Assert.Equal(s.PosteriorMeanCoef2[t], double.Parse(f[6], CultureInfo.InvariantCulture));
        }
    }

    [Fact]
    public void ScheduleJsonHasEveryField()
    {
        var (code, output, _) = Run("schedule", "--timesteps", "10", "--format", "json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal(10, doc.RootElement.GetArrayLength());
        var row = doc.RootElement[9];
        Assert.Equal(0.02, row.GetProperty("beta").GetDouble());
        Assert.True(row.TryGetProperty("posterior_log_variance_clipped", out _));
    }

    [Fact]
    public void InfoPrintsThePapersParameterCount()
    {
        var (code, output, err) = Run("info", "--preset", "ho-cifar10");
        Assert.True(code == 0, err);
        Assert.Contains("35,746,307", output);
        Assert.Contains("GMAC", output);
    }

    [Theory]
    [InlineData("train", "--data", "/no/such/file.gz")]
    [InlineData("train", "--steps", "0")]
    [InlineData("train", "--schedule", "quadratic")]
    [InlineData("sample", "--checkpoint", "/no/such/run")]
    [InlineData("schedule", "--timesteps", "0")]
    [InlineData("schedule", "--format", "xml")]
    [InlineData("info", "--preset", "nonexistent")]
    [InlineData("train", "--device", "tpu")]
    public void BadInputIsAOneLineErrorAndNonZeroExit(params string[] args)
    {
        var (code, _, err) = Run(args);
        Assert.NotEqual(0, code);
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
    }

    [Fact]
    public void UnknownOptionIsAParseError()
    {
        var (code, _, err) = Run("train", "--no-such-option", "3");
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", err);
    }

    [Fact]
    public void VerboseAddsTheStackTrace()
    {
        var (code, _, err) = Run("sample", "--checkpoint", "/no/such/run", "--verbose");
        Assert.Equal(1, code);
        Assert.Contains("   at ", err);
    }

    [Fact]
    public void TrainSampleDiffuseAndResumeEndToEnd()
    {
        var dir = TestUtil.TempDir();
        // A tiny IDX data set of 16 8x8 images.
        var (_, cfgPath) = TestUtil.WriteTinyRunInputs(dir, images: 16, steps: 3);
        var run = Path.Combine(dir, "run");

        var train = Run("train", "--config", cfgPath, "--run-dir", run, "--no-progress", "--threads", "2");
        Assert.True(train.Code == 0, train.Err + train.Out);
        Assert.Contains("step 3/3", train.Out);
        Assert.True(File.Exists(Path.Combine(run, "config.json")));
        Assert.Equal(3, MetricsLog.Read(run).Count);
        Assert.True(Directory.GetFiles(Path.Combine(run, MetricsLog.TensorBoardFolder), "*", SearchOption.AllDirectories).Length > 0);
        using (var grid = ImageIO.LoadPng(Path.Combine(run, Trainer.SamplesFolder, "final.png")))
            Assert.Equal(1, grid.shape[0]);

        var grid2 = Path.Combine(dir, "grid.png");
        var sample = Run("sample", "--checkpoint", run, "--count", "3", "--output", grid2, "--no-progress");
        Assert.True(sample.Code == 0, sample.Err);
        Assert.True(File.Exists(grid2));
        var folder = Path.Combine(dir, "each");
        Assert.Equal(0, Run("sample", "--checkpoint", run, "--count", "2", "--output", folder, "--no-progress").Code);
        Assert.Equal(2, Directory.GetFiles(folder, "*.png").Length);
        using (var one = ImageIO.LoadPng(Directory.GetFiles(folder, "*.png").Order().First()))
            Assert.Equal(new long[] { 1, 8, 8 }, one.shape);

        var figs = Path.Combine(dir, "figs");
        var diffuse = Run("diffuse", "--checkpoint", run, "--count", "2", "--frames", "4", "--output-dir", figs, "--no-progress");
        Assert.True(diffuse.Code == 0, diffuse.Err);
        Assert.True(File.Exists(Path.Combine(figs, "forward.png")));
        Assert.True(File.Exists(Path.Combine(figs, "reverse.png")));

        var again = Run("train", "--config", cfgPath, "--run-dir", run, "--no-progress");
        Assert.Equal(1, again.Code);
        Assert.Contains("--resume", again.Err);

        var badResume = Run("train", "--resume", run, "--lr", "0.1");
        Assert.Equal(1, badResume.Code);
        Assert.Contains("--lr", badResume.Err);

        var resume = Run("train", "--resume", run, "--steps", "5", "--no-progress");
        Assert.True(resume.Code == 0, resume.Err);
        Assert.Contains("resuming", resume.Out);
        Assert.Equal(5, CheckpointStore.ReadState(CheckpointStore.Resolve(run)).Step);
        Assert.Equal(Enumerable.Range(1, 5).Select(i => (long)i), MetricsLog.Read(run).Select(r => r.Step));
    }
}

using Ddpm.Cli;
using Ddpm.Data;
using Ddpm.Imaging;
using Ddpm.Pipelines;
using Ddpm.Sampling;
using static TorchSharp.torch;

namespace Ddpm.Tests.Sampling;

/// <summary>A tiny trained run (T = 12, 8x8 grey images), made once for the CLI tests.</summary>
public sealed class TinyRun : IDisposable
{
    public string Dir { get; } = TestUtil.TempDir();
    public string Run => Path.Combine(Dir, "run");

    public TinyRun()
    {
        var (_, cfgPath) = TestUtil.WriteTinyRunInputs(Dir, images: 16, steps: 2);
        var (code, _, err) = SamplerCliTests.Cli("train", "--config", cfgPath, "--run-dir", Run, "--no-progress", "--threads", "2");
        if (code != 0) throw new InvalidOperationException(err);
    }

    public void Dispose()
    {
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}

public class SamplerCliTests : IClassFixture<TinyRun>
{
    private readonly TinyRun _run;
    public SamplerCliTests(TinyRun run) => _run = run;

    internal static (int Code, string Out, string Err) Cli(params string[] args) => TestUtil.Cli(args);

    private string Out(string name) => Path.Combine(_run.Dir, name);

    [Theory]
    [InlineData("ddim", new[] { "--sample-steps", "5", "--eta", "0.5" }, "ddim, 5 of 12 steps (even), threshold clip, eta 0.5")]
    [InlineData("dpm-solver", new[] { "--sample-steps", "6" }, "dpm-solver, 6 of 12 steps (logsnr)")]
    [InlineData("dpm-solver", new string[0], "dpm-solver, 12 of 12 steps (logsnr)")]
    [InlineData("ddpm", new[] { "--sample-steps", "4", "--threshold", "dynamic" }, "ddpm, 4 of 12 steps (even), threshold dynamic (p 0.995)")]
    [InlineData("ddpm", new[] { "--timestep-list", "11,0,5" }, "ddpm, 3 of 12 steps (listed)")]
    [InlineData("ddim", new[] { "--sample-steps", "3", "--spacing", "logsnr", "--no-clip" }, "ddim, 3 of 12 steps (logsnr), threshold none, eta 0")]
    [InlineData("ddim", new[] { "--sample-steps", "4", "--spacing", "trailing", "--ddim-final", "alpha-bar-0", "--ddim-raw-eps" },
        "ddim, 4 of 12 steps (trailing), threshold clip, eta 0, final alpha_bar_0, raw eps")]
    [InlineData("dpm-solver", new[] { "--sample-steps", "4", "--spacing", "karras", "--dpm-final", "sigma-min", "--dpm-second-order-final" },
        "dpm-solver, 4 of 12 steps (karras), threshold clip, final sigma_min, second order to the end")]
    [InlineData("ddpm", new[] { "--sample-steps", "3", "--threshold", "dynamic", "--dynamic-quantile", "0.9", "--dynamic-max", "2" },
        "ddpm, 3 of 12 steps (even), threshold dynamic (p 0.9, max 2)")]
    public void SampleWithEachSampler(string sampler, string[] extra, string description)
    {
        var grid = Out($"{sampler}-{Guid.NewGuid():N}.png");
        var args = new[] { "sample", "--checkpoint", _run.Run, "--count", "3", "--output", grid, "--no-progress", "--sampler", sampler }.Concat(extra).ToArray();
        var (code, output, err) = Cli(args);
        Assert.True(code == 0, err);
        Assert.Contains(description, output);
        Assert.True(File.Exists(grid));
    }

    [Fact]
    public void DeterministicDdimGivesTheSameImagesForTheSameSeed()
    {
        string Sample(string seed)
        {
            var grid = Out($"ddim-{Guid.NewGuid():N}.png");
            var (code, _, err) = Cli("sample", "-c", _run.Run, "-n", "2", "-o", grid, "--no-progress", "--sampler", "ddim", "--sample-steps", "4", "--seed", seed);
            Assert.True(code == 0, err);
            return Convert.ToBase64String(File.ReadAllBytes(grid));
        }
        Assert.Equal(Sample("3"), Sample("3"));
        Assert.NotEqual(Sample("3"), Sample("4"));
    }

    [Fact]
    public void InterpolateWritesARowWhoseEndsAreTheSeedsSamples()
    {
        var grid = Out("interp.png");
        var (code, output, err) = Cli("interpolate", "-c", _run.Run, "--seed-a", "5", "--seed-b", "6", "--frames", "4", "--sample-steps", "6", "-o", grid, "--no-progress");
        Assert.True(code == 0, err);
        Assert.Contains("4 frames, ddim, 6 of 12 steps (even), threshold clip, eta 0", output);
        using (var png = ImageIO.LoadPng(grid))
            Assert.True(png.shape[2] > 3 * png.shape[1], $"a row: {string.Join("x", png.shape)}");

        using var pipe = DdpmPipeline.Load(_run.Run, CPU);
        var ddim = new DdimSampler(new DdimOptions { Steps = 6 });
        using var row = pipe.Interpolate(5, 6, 4, ddim);
        using var a = pipe.Sample(1, 5, ddim);
        using var b = pipe.Sample(1, 6, ddim);
        Assert.Equal(new long[] { 4, 1, 8, 8 }, row.shape);
        Assert.True(row[0].allclose(a[0], rtol: 1e-4, atol: 1e-5));
        Assert.True(row[3].allclose(b[0], rtol: 1e-4, atol: 1e-5));
    }

    /// <summary>Every command that samples offers the same sampler option group.</summary>
    [Theory]
    [InlineData("sample")]
    [InlineData("interpolate")]
    [InlineData("fid")]
    [InlineData("distance")]
    [InlineData("stats")]
    public void EveryCommandThatSamplesHasTheSamplerGroup(string command)
    {
        var (code, output, _) = Cli(new[] { command, "--help" });
        Assert.Equal(0, code);
        foreach (var flag in new[] { "--sampler", "--sample-steps", "--spacing", "--timestep-list", "--eta", "--threshold", "--dynamic-quantile",
                     "--dynamic-max", "--ddim-final", "--ddim-raw-eps", "--dpm-final", "--dpm-second-order-final" })
            Assert.Contains(flag, output);
    }

    [Fact]
    public void PipelineProgressCountsTheChosenSteps()
    {
        using var pipe = DdpmPipeline.Load(_run.Run, CPU);
        var reports = new List<(int Done, int Total)>();
        using var images = pipe.Sample(5, 0, new DpmSolverSampler(new DpmSolverOptions { Steps = 4 }), batchSize: 2,
            progress: new Ddpm.Runtime.SyncProgress<(int, int)>(reports.Add));
        Assert.Equal(new long[] { 5, 1, 8, 8 }, images.shape);
        Assert.Equal(Enumerable.Range(1, 12).Select(i => (i, 12)), reports);
    }

    [Theory]
    [InlineData("sample", "--sample-steps", "13")]
    [InlineData("sample", "--sampler", "ddim", "--eta", "-1")]
    [InlineData("sample", "--sampler", "ddim", "--eta", "2")]
    [InlineData("sample", "--eta", "0.5")]
    [InlineData("sample", "--sampler", "euler")]
    [InlineData("sample", "--timestep-list", "1,1")]
    [InlineData("sample", "--timestep-list", "0,12")]
    [InlineData("sample", "--sample-steps", "4", "--timestep-list", "0,5")]
    [InlineData("sample", "--spacing", "cosine")]
    [InlineData("sample", "--sampler", "ddpm", "--ddim-final", "alpha-bar-0")]
    [InlineData("sample", "--sampler", "ddim", "--dpm-final", "sigma-min")]
    [InlineData("sample", "--sampler", "ddim", "--ddim-final", "half")]
    [InlineData("sample", "--sampler", "dpm-solver", "--spacing", "leading", "--sample-steps", "12")]
    [InlineData("sample", "--threshold", "dynamic", "--dynamic-quantile", "1.5")]
    [InlineData("sample", "--threshold", "soft")]
    [InlineData("sample", "--threshold", "dynamic", "--no-clip")]
    [InlineData("sample", "--threshold", "dynamic", "--dynamic-max", "0.5")]
    [InlineData("interpolate", "--frames", "1")]
    [InlineData("interpolate", "--sample-steps", "0")]
    [InlineData("interpolate", "--sample-steps", "13")]
    [InlineData("interpolate", "-o", "row.jpg")]
    public void ImpossibleValuesAreOneLineErrors(params string[] args)
    {
        var full = new[] { args[0], "--checkpoint", _run.Run, "--no-progress" }.Concat(args.Skip(1)).ToArray();
        if (args[0] == "sample") full = full.Concat(new[] { "-o", Out("never.png") }).ToArray();
        var (code, _, err) = Cli(full);
        Assert.Equal(1, code);
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("error: --", lines[0]);
    }
}

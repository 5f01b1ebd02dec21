using System.Text.Json;
using Ddpm.Cli;
using Ddpm.Data;
using Ddpm.Metrics;
using Ddpm.Metrics.Inception;
using Ddpm.Tests.Metrics.Inception;
using Ddpm.Training;
using TorchSharp.PyBridge;

namespace Ddpm.Tests.Cli;

public class EvaluationCliTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => TestUtil.Cli(args);

    private static string WriteIdx(string dir, string name, int count, long seed, int size = 8) => TestUtil.WriteIdx(dir, name, count, seed, size);

    [Fact]
    public void DistanceOfACheckpointAgainstRealDataWithFloorAndJson()
    {
        var dir = TestUtil.TempDir();
        var run = Path.Combine(dir, "run");
        using (var t = Trainer.Start(TestUtil.TinyConfig(steps: 2), run, TestUtil.TinyData()))
            t.Run();
        var real = WriteIdx(dir, "real", 60, seed: 3);
        var json = Path.Combine(dir, "d.json");
        var (code, output, err) = Run("distance", run, real, "--count", "20", "--sampler", "ddim", "--sample-steps", "3",
            "--sample-batch-size", "8", "--batch-size", "7", "-o", json, "--no-progress", "--device", "cpu");
        Assert.True(code == 0, err + output);
        Assert.Contains("not FID", output);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var r = doc.RootElement;
        Assert.Equal("fd_classifier", r.GetProperty("metric").GetString());
        Assert.Equal(20, r.GetProperty("a").GetProperty("count").GetInt64());
        Assert.Equal("checkpoint", r.GetProperty("a").GetProperty("kind").GetString());
        Assert.Equal(60, r.GetProperty("b").GetProperty("count").GetInt64());
        Assert.Equal(20, r.GetProperty("a").GetProperty("class_counts").EnumerateArray().Sum(e => e.GetInt64()));
        Assert.Equal(20, r.GetProperty("floor").GetProperty("count").GetInt64());
        Assert.True(r.GetProperty("distance").GetDouble() > 0);
    }

    [Fact]
    public void StatsNpzAgainstTheSameImagesGivesZero()
    {
        var dir = TestUtil.TempDir();
        var real = WriteIdx(dir, "real", 30, seed: 4);
        var npz = Path.Combine(dir, "stats", "real.npz");
        var (code, output, err) = Run("stats", real, "-o", npz, "--classifier", "mnist", "--no-progress");
        Assert.True(code == 0, err + output);
        var stats = FeatureStatistics.LoadNpz(npz);
        Assert.Equal(128, stats.Dim);

        var json = Path.Combine(dir, "d.json");
        (code, output, err) = Run("distance", real, npz, "-o", json, "--no-progress");
        Assert.True(code == 0, err + output);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        Assert.True(Math.Abs(doc.RootElement.GetProperty("distance").GetDouble()) < 1e-6);
        Assert.Contains("floor: not computed", output);
    }

    [Fact]
    public void FidWithRandomInceptionWeightsOnTinySets()
    {
        var dir = TestUtil.TempDir();
        var weights = Path.Combine(dir, "inception.safetensors");
        using (var net = InceptionTestNet.Create()) net.save_safetensors(weights);
        var a = WriteIdx(dir, "a", 6, seed: 5);
        var b = WriteIdx(dir, "b", 6, seed: 6);
        var json = Path.Combine(dir, "fid.json");
        var (code, output, err) = Run("fid", a, a, "--inception-weights", weights, "--dims", "64", "-o", json, "--no-progress");
        Assert.True(code == 0, err + output);
        using (var doc = JsonDocument.Parse(File.ReadAllText(json)))
        {
            Assert.True(Math.Abs(doc.RootElement.GetProperty("distance").GetDouble()) < 1e-6);
            Assert.Equal(64, doc.RootElement.GetProperty("dims").GetInt32());
            Assert.Equal("inception-v3-fid/maxpool1", doc.RootElement.GetProperty("extractor").GetString());
        }
        (code, output, err) = Run("fid", a, b, "--inception-weights", weights, "--dims", "64", "--kid", "-o", json, "--no-progress");
        Assert.True(code == 0, err + output);
        using (var doc = JsonDocument.Parse(File.ReadAllText(json)))
        {
            Assert.True(doc.RootElement.GetProperty("distance").GetDouble() > 0);
            Assert.True(doc.RootElement.TryGetProperty("kid", out _));
        }
    }

    [Fact]
    public void MissingInputsAndWeightsAreOneLineErrors()
    {
        var dir = TestUtil.TempDir();
        var real = WriteIdx(dir, "real", 10, seed: 7);
        var (code, _, err) = Run("fid", real, real, "--inception-weights", Path.Combine(dir, "nope.pth"), "--no-progress");
        Assert.Equal(1, code);
        Assert.Single(err.Trim().Split('\n'));
        Assert.Contains("nope.pth", err);

        (code, _, err) = Run("distance", Path.Combine(dir, "missing"), real, "--no-progress");
        Assert.Equal(1, code);
        Assert.Contains("missing", err);

        (code, _, err) = Run("distance", real, real, "--classifier", "cifar", "--no-progress");
        Assert.Equal(1, code);
        Assert.Single(err.Trim().Split('\n'));

        (code, _, err) = Run("stats", real, "-o", Path.Combine(dir, "x.txt"), "--classifier", "mnist");
        Assert.Equal(1, code);
        Assert.Contains(".npz", err);
    }
}

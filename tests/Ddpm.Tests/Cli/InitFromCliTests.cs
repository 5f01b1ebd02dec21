using System.Text.Json;
using Ddpm.Data;
using Ddpm.Runs;
using Ddpm.Tests.Interop;
using Ddpm.Tests.Training;
using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Tests.Cli;

/// <summary>
/// <c>ddpm train --init-from</c> (fine-tuning from a run, a diffusers folder or an original checkpoint) and
/// <c>--resume RUN --data FILE</c> for a run whose checkpoint names no data (a converted one).
/// </summary>
public class InitFromCliTests : OneThreadTest
{
    private static JsonElement ConfigJson(string run) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(run, Trainer.ConfigFile))).RootElement;

    /// <summary>The command line with one intra-op thread (OneThreadTest restores the process's count afterwards).</summary>
    private static (int Code, string Out, string Err) Train(params string[] args) =>
        TestUtil.Cli(["train", "--no-progress", "--threads", "1", .. args]);

    private static string WriteIdx(string dir, int count, int size) => TestUtil.WriteIdx(dir, $"grey{size}", count, seed: 1, size: size);

    [Fact]
    public void FineTuningADiffusersFolderTakesItsNetworkAndDiffusionSettings()
    {
        var dir = TestUtil.TempDir();
        var idx = WriteIdx(dir, count: 4, size: 28);
        var run = Path.Combine(dir, "run");
        var fixture = DiffusersFolderTests.Fixture("grey28");
        var (code, output, err) = Train("--data", idx, "--init-from", fixture, "--run-dir", run, "--steps", "2", "--batch-size", "2",
            "--sample-count", "1", "--sample-sampler", "ddim", "--sample-steps", "2", "--checkpoint-every", "0", "--device", "cpu");
        Assert.True(code == 0, err + output);
        Assert.Contains($"starting from diffusers folder {fixture}", output);
        Assert.Contains("linear schedule 0.0001 to 0.02, T = 1000, predicts eps, variance fixedlarge; new optimizer", output);

        var c = ConfigJson(run);
        Assert.Equal(fixture, c.GetProperty("init_from").GetString());
        Assert.Equal(("eps", "fixedlarge", "linear", 1000), (c.GetProperty("prediction").GetString(), c.GetProperty("variance").GetString(),
            c.GetProperty("schedule").GetString(), c.GetProperty("timesteps").GetInt32()));
        Assert.Equal(28, c.GetProperty("model").GetProperty("image_size").GetInt32());
        Assert.Equal(16, c.GetProperty("model").GetProperty("base_channels").GetInt32());
        Assert.Equal("ddim", c.GetProperty("sample_sampler").GetString()); // given explicitly: the run's, not the checkpoint's
        Assert.Equal(2, CheckpointStore.ReadState(CheckpointStore.Resolve(run)).Step);
    }

    [Fact]
    public void AnExplicitOptionOverridesTheCheckpointsSettingAndTheRestComeFromIt()
    {
        var dir = TestUtil.TempDir();
        var (idx, cfg) = TestUtil.WriteTinyRunInputs(dir, images: 16, steps: 2);
        var source = Path.Combine(dir, "source");
        var (code, output, err) = Train("--config", cfg, "--run-dir", source, "--schedule", "cosine", "--timesteps", "20", "--sample-threshold", "none");
        Assert.True(code == 0, err + output);

        var tuned = Path.Combine(dir, "tuned");
        (code, output, err) = Train("--data", idx, "--init-from", source, "--run-dir", tuned, "--steps", "1", "--batch-size", "4",
            "--prediction", "v", "--dropout", "0.3", "--sample-count", "1", "--device", "cpu");
        Assert.True(code == 0, err + output);
        Assert.Contains($"starting from run checkpoint {CheckpointStore.Resolve(source)} (ema.safetensors of step 2): cosine schedule, T = 20, predicts eps", output);
        var c = ConfigJson(tuned);
        Assert.Equal("v", c.GetProperty("prediction").GetString());
        Assert.Equal(("cosine", 20, "none", "none"), (c.GetProperty("schedule").GetString(), c.GetProperty("timesteps").GetInt32(),
            c.GetProperty("sample_threshold").GetString(), c.GetProperty("eval_threshold").GetString()));
        Assert.Equal(0.3, c.GetProperty("model").GetProperty("dropout").GetDouble());
        Assert.Equal(ConfigJson(source).GetProperty("model").GetProperty("channel_mult").ToString(), c.GetProperty("model").GetProperty("channel_mult").ToString());
        Assert.Equal(source, c.GetProperty("init_from").GetString());

        // init_from cannot change when resuming.
        (code, _, err) = Train("--resume", tuned, "--init-from", source, "--steps", "2");
        Assert.NotEqual(0, code);
        Assert.Contains("--init-from cannot change when resuming", err);
    }

    [Theory]
    [InlineData("--preset")]
    [InlineData("--model")]
    public void TheNetworkCannotBeGivenWithInitFrom(string option)
    {
        var dir = TestUtil.TempDir();
        var idx = WriteIdx(dir, count: 4, size: 28);
        string value = option == "--preset" ? "mnist-small" : Path.Combine(dir, "model.json");
        File.WriteAllText(Path.Combine(dir, "model.json"), JsonSerializer.Serialize(TestUtil.TinyUNet(1, 28), TrainConfig.Json));
        var (code, output, err) = Train("--data", idx, "--init-from", DiffusersFolderTests.Fixture("grey28"), option, value,
            "--run-dir", Path.Combine(dir, "run"));
        Assert.NotEqual(0, code);
        Assert.Equal($"error: {option} cannot be combined with --init-from: the network comes from the checkpoint", err.Trim());
        Assert.DoesNotContain("run folder", output);
        Assert.False(Directory.Exists(Path.Combine(dir, "run")));
    }

    [Fact]
    public void AMissingPathAndDataOfAnotherSizeAreOneLineErrors()
    {
        var dir = TestUtil.TempDir();
        var idx8 = WriteIdx(dir, count: 4, size: 8);
        var missing = Path.Combine(dir, "no-such-model");
        var (code, _, err) = Train("--data", idx8, "--init-from", missing, "--run-dir", Path.Combine(dir, "a"));
        Assert.NotEqual(0, code);
        Assert.Equal($"error: --init-from {missing}: no such file or folder", err.Trim());

        (code, _, err) = Train("--data", idx8, "--init-from", DiffusersFolderTests.Fixture("grey28"), "--run-dir", Path.Combine(dir, "b"), "--batch-size", "2");
        Assert.NotEqual(0, code);
        Assert.Single(err.Trim().Split('\n'));
        Assert.Contains("the model expects 1x28x28 images but the data", err);
        Assert.Contains("has 1x8x8", err);
        Assert.False(Directory.Exists(Path.Combine(dir, "b")));
    }

    [Fact]
    public void ARunWithoutDataResumesWithTheDataGivenAndOthersKeepTheirs()
    {
        var dir = TestUtil.TempDir();
        var (idx, cfg) = TestUtil.WriteTinyRunInputs(dir, images: 16, steps: 2);
        var run = Path.Combine(dir, "run");
        var (code, output, err) = Train("--config", cfg, "--run-dir", run);
        Assert.True(code == 0, err + output);

        // A run that names its data keeps it.
        (code, _, err) = Train("--resume", run, "--data", idx, "--steps", "3");
        Assert.NotEqual(0, code);
        Assert.Equal("error: --data cannot change when resuming (the run keeps its settings)", err.Trim());

        // A converted run names none: resuming needs --data, and takes it.
        FineTuningTests.ClearData(run);
        (code, _, err) = Train("--resume", run, "--steps", "3");
        Assert.NotEqual(0, code);
        Assert.Equal("error: --data: no training data given", err.Trim());
        (code, output, err) = Train("--resume", run, "--data", idx, "--steps", "3");
        Assert.True(code == 0, err + output);
        Assert.Contains("resuming", output);
        Assert.Equal(idx, ConfigJson(run).GetProperty("data").GetString());
        Assert.Equal(3, CheckpointStore.ReadState(CheckpointStore.Resolve(run)).Step);

        // Now it names its data, and keeps it.
        (code, _, err) = Train("--resume", run, "--data", idx, "--steps", "4");
        Assert.NotEqual(0, code);
        Assert.Contains("--data cannot change when resuming", err);
    }

    /// <summary>
    /// A run whose data is gone (a deleted clone's bundled copy, a moved folder) cannot resume without --data, and takes
    /// the data given, saying so; the new path is then its own.
    /// </summary>
    [Fact]
    public void ARunWhoseDataIsGoneResumesWithTheDataGiven()
    {
        var dir = TestUtil.TempDir();
        var (idx, cfg) = TestUtil.WriteTinyRunInputs(dir, images: 16, steps: 2);
        var run = Path.Combine(dir, "run");
        var (code, output, err) = Train("--config", cfg, "--run-dir", run);
        Assert.True(code == 0, err + output);
        var moved = Path.Combine(dir, "moved-" + Path.GetFileName(idx));
        File.Move(idx, moved);

        (code, _, err) = Train("--resume", run, "--steps", "3");
        Assert.NotEqual(0, code);
        Assert.Equal($"error: the run's data {idx} is not there (moved or deleted): give its new place with --data", err.Trim());
        (code, output, err) = Train("--resume", run, "--data", moved, "--steps", "3");
        Assert.True(code == 0, err + output);
        Assert.Contains($"data: the run's {idx} is not there; it trains on {moved} from now on", output);
        Assert.Equal(moved, ConfigJson(run).GetProperty("data").GetString());
        Assert.Equal(3, CheckpointStore.ReadState(CheckpointStore.Resolve(run)).Step);

        // Its data is there again: it keeps it.
        (code, _, err) = Train("--resume", run, "--data", idx, "--steps", "4");
        Assert.Contains("--data cannot change when resuming", err);
    }
}

using System.Text.Json;
using Ddpm.Runs;
using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Tests.Cli;

/// <summary>
/// The <c>train</c> options no other test passes: each reaches config.json under its snake_case key and, where that is
/// cheap to see, has its effect. Two tiny runs keep it fast.
/// </summary>
public class TrainOptionsCliTests
{
    private static JsonElement ConfigJson(string run) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(run, Trainer.ConfigFile))).RootElement;

    private static string[] Names(string dir, string pattern) =>
        Directory.GetFileSystemEntries(dir, pattern).Select(p => Path.GetFileName(p)!).Order(StringComparer.Ordinal).ToArray();

    [Fact]
    public void OptimisationDataAndOutputOptionsReachTheConfigAndTakeEffect()
    {
        var dir = TestUtil.TempDir();
        // 16 images, batch 4, 4 steps, lr 1e-3, a log line every step (TestUtil.TinyConfig).
        var (_, cfg) = TestUtil.WriteTinyRunInputs(dir, images: 16, steps: 4);
        var run = Path.Combine(dir, "run");
        int threadsBefore = get_num_threads();
        try
        {
            var (code, output, err) = TestUtil.Cli("train", "--config", cfg, "--run-dir", run, "--no-progress", "--threads", "1",
                "--grad-clip", "0.5", "--random-flip", "--sample-every", "2", "--checkpoint-every", "2", "--dropout", "0.2",
                "--adam-eps", "1e-6", "--ema-power", "0.5", "--no-ema-warmup", "--vlb-weight", "0.01", "--max-images", "10",
                "--warmup", "3");
            Assert.True(code == 0, err + output);
            Assert.Equal(1, get_num_threads()); // --threads 1 set libtorch's intra-op threads

            var c = ConfigJson(run);
            Assert.Equal(0.5, c.GetProperty("grad_clip").GetDouble());
            Assert.True(c.GetProperty("random_flip").GetBoolean());
            Assert.Equal(2, c.GetProperty("sample_every").GetInt64());
            Assert.Equal(2, c.GetProperty("checkpoint_every").GetInt64());
            Assert.Equal(0.2, c.GetProperty("dropout").GetDouble());
            Assert.Equal(0.2, c.GetProperty("model").GetProperty("dropout").GetDouble()); // reaches the network's blocks
            Assert.Equal(1e-6, c.GetProperty("adam_eps").GetDouble());
            Assert.Equal(0.5, c.GetProperty("ema_power").GetDouble());
            Assert.False(c.GetProperty("ema_warmup").GetBoolean());
            Assert.Equal(0.01, c.GetProperty("vlb_weight").GetDouble());
            Assert.Equal(10, c.GetProperty("max_images").GetInt32());
            Assert.Equal(3, c.GetProperty("warmup_steps").GetInt64());
            Assert.Equal(1, c.GetProperty("threads").GetInt32());

            // --max-images 10 of the 16 images.
            Assert.Contains("data: 10 images 1x8x8", output);
            // --checkpoint-every 2 over 4 steps: step 2 and the end (step 4), both kept (keep 2).
            Assert.Equal(new[] { CheckpointStore.NameFor(2), CheckpointStore.NameFor(4) }, Names(Path.Combine(run, CheckpointStore.Folder), "step_*"));
            // --sample-every 2: a grid at step 2, then the end's grid and its copy.
            Assert.Equal(new[] { "final.png", "step_0000002.png", "step_0000004.png" }, Names(Path.Combine(run, Trainer.SamplesFolder), "*.png"));
            // --warmup 3: the first update uses 1e-3 * 1 / 3, the third and later 1e-3.
            var lines = MetricsLog.Read(run);
            Assert.Equal(1e-3 / 3, lines[0].Lr, 1e-15);
            Assert.Equal(1e-3 * 2 / 3, lines[1].Lr, 1e-15);
            Assert.Equal(1e-3, lines[3].Lr, 1e-15);
        }
        finally
        {
            set_num_threads(threadsBefore);
        }
    }

    [Fact]
    public void EvalEveryUsesTheGivenInceptionWeights()
    {
        var dir = TestUtil.TempDir();
        var (_, cfg) = TestUtil.WriteTinyRunInputs(dir, images: 24, steps: 4);
        var run = Path.Combine(dir, "run");
        var weights = Path.Combine(dir, "pt_inception-absent.pth");
        int threadsBefore = get_num_threads();
        var (code, _, err) = TestUtil.Cli("train", "--config", cfg, "--run-dir", run, "--no-progress", "--threads", "1",
            "--eval-every", "2", "--inception-weights", weights, "--eval-classifier", "none", "--eval-count", "10", "--eval-real-count", "20");
        set_num_threads(threadsBefore); // the command sets the process's thread count
        // The evaluator opens the weights it was given before the first step; they are not there: a one-line error naming them.
        Assert.Equal(1, code);
        Assert.Contains(weights, err);
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Empty(MetricsLog.Read(run)); // refused before any training step was spent
        var c = ConfigJson(run);
        Assert.Equal(2, c.GetProperty("eval_every").GetInt64());
        Assert.Equal(weights, c.GetProperty("inception_weights").GetString());
        Assert.Equal("none", c.GetProperty("eval_classifier").GetString());
    }

    /// <summary>
    /// Resuming keeps the run's thread count unless --threads is given: libtorch splits its reductions by thread, so
    /// another count changes the last bits (bench/crash-harness.sh found resumed runs off the uninterrupted bytes).
    /// </summary>
    [Fact]
    public void ResumingKeepsTheRunsThreadCountUnlessGiven()
    {
        var dir = TestUtil.TempDir();
        var (_, cfg) = TestUtil.WriteTinyRunInputs(dir, images: 24, steps: 1);
        var run = Path.Combine(dir, "run");
        int threadsBefore = get_num_threads();
        try
        {
            Assert.Equal(0, TestUtil.Cli("train", "--config", cfg, "--output", run, "--no-progress", "--threads", "1").Code);
            var (code, _, err) = TestUtil.Cli("train", "--resume", run, "--steps", "2", "--no-progress");
            Assert.True(code == 0, err);
            Assert.Equal(1, ConfigJson(run).GetProperty("threads").GetInt32());
            Assert.Equal(1, get_num_threads());
            Assert.Equal(0, TestUtil.Cli("train", "--resume", run, "--steps", "3", "--no-progress", "--threads", "2").Code);
            Assert.Equal(2, ConfigJson(run).GetProperty("threads").GetInt32());
        }
        finally
        {
            set_num_threads(threadsBefore);
        }
    }

    /// <summary>
    /// --max-minutes reaches config.json, a budget spent by the first step ends the run there with exit code 0, the final
    /// grid and a line naming the step and how to train further; resuming with a budget of 0 trains to the steps.
    /// </summary>
    [Fact]
    public void MaxMinutesEndsTheRunWhenSpentAndSaysHowToContinue()
    {
        var dir = TestUtil.TempDir();
        var (_, cfg) = TestUtil.WriteTinyRunInputs(dir, images: 24, steps: 50);
        var run = Path.Combine(dir, "run");
        int threadsBefore = get_num_threads();
        try
        {
            // 6 microseconds: spent by the first step, whatever the machine.
            var (code, output, err) = TestUtil.Cli("train", "--config", cfg, "--output", run, "--no-progress", "--threads", "1",
                "--max-minutes", "1e-7", "--sample-sampler", "ddim", "--sample-steps", "2");
            Assert.True(code == 0, err + output);
            Assert.Equal(1e-7, ConfigJson(run).GetProperty("max_minutes").GetDouble());
            Assert.Contains($"time limit: 1E-07 minutes of training reached at step 1 of 50; to train further: ddpm train --resume {run} --max-minutes M", output);
            Assert.Contains("done: 1 steps", output);
            Assert.True(File.Exists(Path.Combine(run, Trainer.SamplesFolder, "final.png")));

            (code, output, err) = TestUtil.Cli("train", "--resume", run, "--max-minutes", "0", "--steps", "3", "--no-progress");
            Assert.True(code == 0, err + output);
            Assert.DoesNotContain("time limit", output);
            Assert.Contains("done: 3 steps", output);
        }
        finally
        {
            set_num_threads(threadsBefore);
        }
    }
}

using Ddpm.Configuration;
using Ddpm.Runs;

namespace Ddpm.Tests.Training;

/// <summary>
/// <c>ddpm evaluate RUN</c> scores saved checkpoints with the evaluator of <c>--eval-every</c>: the same figures training
/// logged at a step, placed on the run's training clock, and a curve for steps that training never scored.
/// </summary>
public class CheckpointEvaluationTests
{
    private static string TrainedRun(out string runDir)
    {
        var dir = TestUtil.TempDir();
        var (idx, _) = TestUtil.WriteTinyRunInputs(dir, images: 24, steps: 4);
        var config = TestUtil.TinyConfig(steps: 4);
        config.Data = idx;
        config.CheckpointEvery = 2;
        config.KeepCheckpoints = 5;
        config.EvalEvery = 4;
        config.EvalCount = 10;
        config.EvalRealCount = 20;
        config.EvalSampler = "ddim";
        config.EvalSteps = 3;
        config.EvalClassifier = EvalClassifierChoice.Mnist;
        var cfg = Path.Combine(dir, "eval-cfg.json");
        File.WriteAllText(cfg, config.ToJson());
        runDir = Path.Combine(dir, "run");
        var (code, _, err) = TestUtil.Cli("train", "--config", cfg, "-o", runDir, "--no-progress");
        Assert.True(code == 0, err);
        return runDir;
    }

    [Fact]
    public void ScoringASavedCheckpointGivesTheFiguresTrainingLoggedAndFillsInTheOthers()
    {
        TrainedRun(out var run);
        var logged = Assert.Single(MetricsLog.ReadEvals(run));
        Assert.Equal(4, logged.Step);
        Assert.True(File.Exists(Path.Combine(run, "curves.png")), "train redraws the run's curves at each evaluation");

        var (code, output, err) = TestUtil.Cli("evaluate", run, "--again", "--no-progress");
        Assert.True(code == 0, err);
        var evals = MetricsLog.ReadEvals(run);
        Assert.Equal(new long[] { 4, 2, 4 }, evals.Select(e => e.Step).ToArray());
        // Same EMA weights, sampler, seeds and reference: the very same numbers as the evaluation during training.
        Assert.Equal(logged.Eval.OrderBy(kv => kv.Key), evals[2].Eval.OrderBy(kv => kv.Key));
        // Each line sits on the training clock of its step's metrics line.
        var lines = MetricsLog.Read(run);
        Assert.Equal(lines.Single(l => l.Step == 2).TrainSeconds, evals[1].TrainSec);
        Assert.Contains("step 2 (", output);

        // Without --again, checkpoints scored with this sample count are left alone; another count scores them anew.
        (code, output, _) = TestUtil.Cli("evaluate", run, "--no-progress");
        Assert.Equal(0, code);
        Assert.Contains("already has an evaluation", output);
        (code, _, err) = TestUtil.Cli("evaluate", run, "--eval-count", "12", "--eval-real-count", "24", "--every", "3", "--no-progress");
        Assert.True(code == 0, err);
        // --every 3: no step of 2 or 4 is a multiple of 3, so only the last checkpoint is scored.
        Assert.Equal(new long[] { 4 }, MetricsLog.ReadEvals(run).Where(e => e.EvalCount == 12).Select(e => e.Step));
    }

    [Fact]
    public void ARunWhoseDataMovedIsScoredWithTheNewPathAndTheSameFigures()
    {
        TrainedRun(out var run);
        var logged = Assert.Single(MetricsLog.ReadEvals(run));
        var config = TrainConfig.Load(Path.Combine(run, "config.json"));
        var moved = Path.Combine(TestUtil.TempDir(), "elsewhere.idx");
        File.Move(config.Data, moved);

        var (code, _, err) = TestUtil.Cli("evaluate", run, "--again", "--no-progress");
        Assert.Equal(1, code);
        Assert.Contains("is not there (moved or deleted)", err);
        Assert.Contains(config.Data, err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.Single(MetricsLog.ReadEvals(run));

        (code, _, err) = TestUtil.Cli("evaluate", run, "--again", "--data", moved, "--no-progress");
        Assert.True(code == 0, err);
        // The same images at a new path: the same reference, so the same figures as training logged at step 4.
        var again = MetricsLog.ReadEvals(run).Last();
        Assert.Equal(4, again.Step);
        Assert.Equal(logged.Eval.OrderBy(kv => kv.Key), again.Eval.OrderBy(kv => kv.Key));
    }

    [Fact]
    public void AFolderWithoutCheckpointsIsAOneLineError()
    {
        var dir = TestUtil.TempDir();
        var (code, _, err) = TestUtil.Cli("evaluate", dir, "--no-progress");
        Assert.Equal(1, code);
        Assert.Contains("no complete checkpoint to evaluate", err);
        Assert.Single(err.Trim().Split('\n'));
    }
}

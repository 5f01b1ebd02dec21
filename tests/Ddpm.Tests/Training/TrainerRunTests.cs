using Ddpm.Metrics.Evaluation;
using Ddpm.Runs;
using Ddpm.Tests.Sampling;
using Ddpm.Runtime;
using Ddpm.Sampling;
using Ddpm.Tests.Metrics;
using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

/// <summary><see cref="Trainer.Run"/>: cancellation, periodic checkpoints and grids, the logged loss, and resuming's metrics cut.</summary>
public class TrainerRunTests
{
    /// <summary>The tiny run, its grids drawn with 2 DDIM steps instead of all 12 ancestral ones: what is tested here is when they are drawn.</summary>
    private static TrainConfig RunConfig(long steps)
    {
        var c = TestUtil.TinyConfig(steps);
        c.SampleSampler = "ddim";
        c.SampleSteps = 2;
        return c;
    }

    private static string Checkpoints(string run) => Path.Combine(run, CheckpointStore.Folder);

    private static string[] Names(IEnumerable<string> paths) => paths.Select(p => Path.GetFileName(p)!).Order(StringComparer.Ordinal).ToArray();

    private static void AssertSameParameters(nn.Module expected, nn.Module actual, string what)
    {
        var e = TestUtil.Parameters(expected);
        foreach (var (name, p) in actual.named_parameters())
            Assert.True(p.equal(e[name]).all().item<bool>(), $"{what} {name}");
    }

    /// <summary>
    /// Each metrics line holds the mean of the per-step losses (from the progress reports) since the previous line, so
    /// every step's loss is counted once; the lines fall on <paramref name="lineSteps"/>.
    /// </summary>
    private static void AssertLogLinesAverageTheirWindows(string run, IReadOnlyList<TrainProgress> reports, long[] lineSteps)
    {
        var lines = MetricsLog.Read(run);
        Assert.Equal(lineSteps, lines.Select(l => l.Step));
        long previous = 0;
        foreach (var line in lines)
        {
            var window = reports.Where(r => r.Step > previous && r.Step <= line.Step).ToList();
            Assert.Equal(line.Step - previous, window.Count);
            double mean = window.Sum(r => r.Loss) / window.Count;
            Assert.Equal(mean, line.Loss, 1e-12 * mean); // the same doubles summed: only the order of rounding may differ
            Assert.Equal(window[^1].LearningRate, line.Lr);
            Assert.Equal(window[^1].GradNorm, line.GradNorm);
            previous = line.Step;
        }
    }

    private static SyncProgress<TrainProgress> Collect(List<TrainProgress> into, Action<TrainProgress>? also = null) =>
        new(p =>
        {
            if (p.Phase == TrainPhase.Train) into.Add(p);
            also?.Invoke(p);
        });

    [Fact]
    public void CancellingMidRunSavesTheCurrentStepAndResumingEndsOnTheSameWeights()
    {
        using var scope = NewDisposeScope();
        using var data = TestUtil.TinyData();
        var dir = TestUtil.TempDir();
        // Dropout stays on (TinyUNet's 0.1): resuming must reproduce its per-step draws too. A periodic checkpoint at step 3,
        // the step the run is stopped at, makes the interruption save the same step a second time.
        var config = RunConfig(steps: 6);
        config.CheckpointEvery = 3;
        config.LogEvery = 2;

        var straightReports = new List<TrainProgress>();
        using var straight = Trainer.Start(config, Path.Combine(dir, "straight"), data);
        straight.Run(Collect(straightReports));

        var run = Path.Combine(dir, "stopped");
        var reports = new List<TrainProgress>();
        using var cts = new CancellationTokenSource();
        TrainResult first;
        using (var t = Trainer.Start(config, run, data))
        {
            // Reports are synchronous: cancelling after step 3's report stops the loop before step 4 begins.
            first = t.Run(Collect(reports, p => { if (p.Phase == TrainPhase.Train && p.Step == 3) cts.Cancel(); }), cts.Token);
            Assert.Equal(3, t.Step);
        }
        Assert.True(first.Interrupted);
        Assert.Equal(3, first.Step);
        Assert.Null(first.FinalGrid);
        Assert.Equal(CheckpointStore.NameFor(3), Path.GetFileName(first.CheckpointDir));
        Assert.Equal(3, CheckpointStore.ReadState(CheckpointStore.Resolve(run)).Step);
        Assert.Equal(new[] { CheckpointStore.LatestFile, CheckpointStore.NameFor(3) },
            Names(Directory.GetFileSystemEntries(Checkpoints(run)))); // no leftover temporary or swapped-out folder
        Assert.False(Directory.Exists(Path.Combine(run, Trainer.SamplesFolder)));

        using var resumed = Trainer.Resume(run, data);
        Assert.Equal(3, resumed.Step);
        var end = resumed.Run(Collect(reports));
        Assert.False(end.Interrupted);
        Assert.Equal(6, end.Step);
        // Exact resume: bit-for-bit the weights of the uninterrupted run, and the same loss at every step.
        AssertSameParameters(straight.Model, resumed.Model, "model");
        AssertSameParameters(straight.EmaModel, resumed.EmaModel, "ema");
        Assert.Equal(straightReports.Select(r => (r.Step, r.Loss)), reports.Select(r => (r.Step, r.Loss)));
        // Log every 2: lines at 2 and 6 as in the straight run, and the interrupted window (step 3) is logged when the run
        // stops, so the line at 4 after resuming averages step 4 alone and no step's loss goes unlogged.
        AssertLogLinesAverageTheirWindows(straight.RunDir, straightReports, new long[] { 2, 4, 6 });
        AssertLogLinesAverageTheirWindows(run, reports, new long[] { 2, 3, 4, 6 });
    }

    /// <summary>
    /// --max-minutes: the run stops after the first step at which its training clock (train_sec, which counts the
    /// progress reports' time) has reached the budget, and finishes as at its last step (checkpoint, final grid, not
    /// interrupted). Every progress report here sleeps 0.2 s, so a 0.6 s budget is spent within 3 steps, whatever the
    /// machine's speed; the clock runs on over resumes, a resumed run whose budget is spent finishes at once, and one
    /// without a budget trains to its steps, on the weights of a run that was never stopped.
    /// </summary>
    [Fact]
    public void ATimeBudgetFinishesTheRunAfterTheStepThatSpendsItAndCountsOverResumes()
    {
        using var scope = NewDisposeScope();
        using var data = TestUtil.TinyData();
        var run = Path.Combine(TestUtil.TempDir(), "run");
        var config = RunConfig(steps: 1000);
        config.LogEvery = 1;
        config.CheckpointEvery = 0;
        config.MaxMinutes = 0.01;   // 0.6 s
        var slow = new SyncProgress<TrainProgress>(p => { if (p.Phase == TrainPhase.Train) Thread.Sleep(200); });

        // The lines before the last are all under the budget: the run stopped at the first step that reached it.
        static long AssertStoppedByTheBudget(TrainResult result, string run, double budgetSeconds, long after, long atMost)
        {
            Assert.True(result.TimeLimitReached);
            Assert.False(result.Interrupted);
            Assert.InRange(result.Step, after + 1, atMost);
            Assert.True(result.FinalGrid is not null && File.Exists(result.FinalGrid), "the final grid is drawn");
            Assert.Equal(result.Step, CheckpointStore.ReadState(CheckpointStore.Resolve(run)).Step);
            var lines = MetricsLog.Read(run);
            Assert.Equal(result.Step, lines[^1].Step);
            foreach (var line in lines.Where(l => l.Step > after && l.Step < result.Step))
                Assert.True(line.TrainSeconds < budgetSeconds, $"step {line.Step} at {line.TrainSeconds} s: the budget was spent before it");
            return result.Step;
        }

        long k;
        using (var t = Trainer.Start(config, run, data))
            k = AssertStoppedByTheBudget(t.Run(slow), run, 0.6, after: 0, atMost: 3);
        long k2;
        using (var t = Trainer.Resume(run, data, c => c.MaxMinutes = 0.02))   // 1.2 s over both invocations: at most 3 more steps
            k2 = AssertStoppedByTheBudget(t.Run(slow), run, 1.2, after: k, atMost: k + 3);
        using (var t = Trainer.Resume(run, data))   // the budget is spent: no step, the run finishes again
        {
            var again = t.Run(slow);
            Assert.Equal((k2, true, false), (again.Step, again.TimeLimitReached, again.Interrupted));
        }
        using var last = Trainer.Resume(run, data, c => { c.MaxMinutes = 0; c.Steps = k2 + 2; });
        var end = last.Run();
        Assert.Equal((k2 + 2, false), (end.Step, end.TimeLimitReached));

        var straightConfig = RunConfig(steps: k2 + 2);
        straightConfig.CheckpointEvery = 0;
        using var straight = Trainer.Start(straightConfig, Path.Combine(TestUtil.TempDir(), "straight"), data);
        straight.Run();
        AssertSameParameters(straight.Model, last.Model, "model");
        AssertSameParameters(straight.EmaModel, last.EmaModel, "ema");
    }

    [Theory]
    [InlineData("sample")]
    [InlineData("eval")]
    public void CancellingWhileAPeriodicGridOrEvaluationRunsStopsAtThatStepWithACheckpoint(string phase)
    {
        using var scope = NewDisposeScope();
        using var data = TestUtil.TinyData();
        var run = Path.Combine(TestUtil.TempDir(), "run");
        var config = RunConfig(steps: 5);
        config.SampleEvery = phase == "sample" ? 2 : 0;
        config.EvalEvery = phase == "eval" ? 2 : 0;
        config.EvalCount = 10;
        config.EvalRealCount = 20;
        using var cts = new CancellationTokenSource();
        using var t = Trainer.Start(config, run, data);
        if (phase == "eval") // scores pixel statistics of ancestral samples: no classifier needed
            t.Evaluator = new TrainingEvaluator(t.Config, data, new[] { new EvalMetric("fd_pixels", new PixelStatsExtractor()) },
                (model, diffusion, shape, seed, ct) =>
                {
                    using var r = TestSampling.Ancestral(diffusion, model, shape, new SampleOptions { Seed = seed }, CPU, null, ct);
                    return r.Samples.detach().clone();
                });
        // The first grid (or evaluation) comes after step 2; cancel while it draws.
        var result = t.Run(new SyncProgress<TrainProgress>(p => { if (p.Phase == (phase == "eval" ? TrainPhase.Eval : TrainPhase.Sample)) cts.Cancel(); }), cts.Token);
        // Run documents: on cancellation it saves a checkpoint and returns with Interrupted set (it must not throw and
        // lose the steps since the last checkpoint).
        Assert.True(result.Interrupted);
        Assert.Equal(2, result.Step);
        Assert.Equal(2, CheckpointStore.ReadState(CheckpointStore.Resolve(run)).Step);
        Assert.Null(result.FinalGrid);
        var samples = Path.Combine(run, Trainer.SamplesFolder);
        Assert.True(!Directory.Exists(samples) || Directory.GetFiles(samples).Length == 0, "no grid is left from the cancelled drawing");
    }

    [Fact]
    public void CancellingWhileTheFinalGridIsDrawnKeepsTheFinalCheckpoint()
    {
        using var scope = NewDisposeScope();
        using var data = TestUtil.TinyData();
        var run = Path.Combine(TestUtil.TempDir(), "run");
        using var cts = new CancellationTokenSource();
        using var t = Trainer.Start(RunConfig(steps: 2), run, data);
        var result = t.Run(new SyncProgress<TrainProgress>(p => { if (p.Phase == TrainPhase.Sample) cts.Cancel(); }), cts.Token);
        Assert.True(result.Interrupted);
        Assert.Equal(2, result.Step);
        Assert.Null(result.FinalGrid);
        Assert.Equal(2, CheckpointStore.ReadState(CheckpointStore.Resolve(run)).Step);
        Assert.False(File.Exists(Path.Combine(run, Trainer.SamplesFolder, "final.png")));
    }

    [Fact]
    public void PeriodicCheckpointsGridsAndLogLinesFallOnTheirSteps()
    {
        using var scope = NewDisposeScope();
        using var data = TestUtil.TinyData();
        var run = Path.Combine(TestUtil.TempDir(), "run");
        var config = RunConfig(steps: 7);
        config.CheckpointEvery = 2;
        config.SampleEvery = 3;
        config.LogEvery = 3;
        config.KeepCheckpoints = 3;
        var reports = new List<TrainProgress>();
        using (var t = Trainer.Start(config, run, data))
            t.Run(Collect(reports));

        // Checkpoints at steps 2, 4, 6 (every 2, before the end) and 7 (the end); keep 3 leaves the newest three.
        Assert.Equal(new[] { CheckpointStore.LatestFile, CheckpointStore.NameFor(4), CheckpointStore.NameFor(6), CheckpointStore.NameFor(7) },
            Names(Directory.GetFileSystemEntries(Checkpoints(run))));
        Assert.Equal(CheckpointStore.NameFor(7), File.ReadAllText(Path.Combine(Checkpoints(run), CheckpointStore.LatestFile)).Trim());
        // Grids at steps 3 and 6 (every 3) and 7 (the end), which is also copied to final.png.
        var samples = Path.Combine(run, Trainer.SamplesFolder);
        Assert.Equal(new[] { "final.png", "step_0000003.png", "step_0000006.png", "step_0000007.png" }, Names(Directory.GetFiles(samples)));
        Assert.Equal(File.ReadAllBytes(Path.Combine(samples, "step_0000007.png")), File.ReadAllBytes(Path.Combine(samples, "final.png")));

        // One report per step; a log line at steps 3, 6 and 7 (every 3, and the last) with the mean of the losses since
        // the previous line (steps 1-3, 4-6, 7), and that step's learning rate and gradient norm.
        Assert.Equal(Enumerable.Range(1, 7).Select(i => (long)i), reports.Select(r => r.Step));
        AssertLogLinesAverageTheirWindows(run, reports, new long[] { 3, 6, 7 });
        var lines = MetricsLog.Read(run);
        Assert.NotEqual(reports[0].Loss, lines[0].Loss); // averaging is visible (the losses of a window differ)
    }

    [Fact]
    public void TruncateAfterKeepsExactlyTheLinesUpToTheStep()
    {
        var run = TestUtil.TempDir();
        var path = Path.Combine(run, MetricsLog.FileName);
        // Training lines at 1..5, evaluation lines at 2 and 4, and a blank line, as a run stopped after step 5 leaves them.
        string[] lines =
        {
            "{\"step\":1,\"loss\":0.9,\"lr\":0.001,\"grad_norm\":1,\"images_per_sec\":10,\"elapsed_sec\":1}",
            "{\"step\":2,\"loss\":0.8,\"lr\":0.001,\"grad_norm\":1,\"images_per_sec\":10,\"elapsed_sec\":2}",
            "{\"step\":2,\"eval_count\":10,\"eval\":{\"fd\":3.5}}",
            "{\"step\":3,\"loss\":0.7,\"lr\":0.001,\"grad_norm\":1,\"images_per_sec\":10,\"elapsed_sec\":3}",
            "",
            "{\"step\":4,\"loss\":0.6,\"lr\":0.001,\"grad_norm\":1,\"images_per_sec\":10,\"elapsed_sec\":4}",
            "{\"step\":4,\"eval_count\":10,\"eval\":{\"fd\":2.5}}",
            "{\"step\":5,\"loss\":0.5,\"lr\":0.001,\"grad_norm\":1,\"images_per_sec\":10,\"elapsed_sec\":5}",
        };
        File.WriteAllText(path, string.Join("\n", lines) + "\n");

        MetricsLog.TruncateAfter(run, 3); // resumed from the checkpoint of step 3
        Assert.Equal(string.Join("\n", lines[0], lines[1], lines[2], lines[3]) + "\n", File.ReadAllText(path));
        Assert.Equal(new long[] { 1, 2, 3 }, MetricsLog.Read(run).Select(r => r.Step));
        Assert.Equal(0.7, MetricsLog.Read(run)[^1].Loss);
        Assert.Equal(new long[] { 2 }, MetricsLog.ReadEvals(run).Select(e => e.Step));

        MetricsLog.TruncateAfter(run, 3); // idempotent
        Assert.Equal(4, File.ReadAllLines(path).Length);
        MetricsLog.TruncateAfter(run, 0); // resumed from step 0: nothing was done before it
        Assert.Equal("", File.ReadAllText(path));
        MetricsLog.TruncateAfter(Path.Combine(run, "none"), 3); // no file: nothing to do, no error
        Assert.False(Directory.Exists(Path.Combine(run, "none")));
    }
}

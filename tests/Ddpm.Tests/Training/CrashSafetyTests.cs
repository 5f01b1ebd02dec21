using Ddpm.IO;
using TorchSharp.PyBridge;
using Ddpm.Runs;
using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

/// <summary>
/// What survives a crash, a second process or a damaged file. Crashes are simulated by fault injection: a hook
/// between every two file operations of a checkpoint save throws as a killed process would stop (no cleanup runs);
/// then the run must resolve to a complete checkpoint, resume, and end with the bytes of an uninterrupted run.
/// </summary>
public class CrashSafetyTests : IDisposable
{
    public void Dispose() => FaultInjection.Hook = null;

    private static TrainConfig Config(long steps, int keep = 2)
    {
        var c = TestUtil.TinyConfig(steps);
        c.KeepCheckpoints = keep;
        c.SampleCount = 1;
        c.SampleSteps = 2;
        c.SampleSampler = "ddim";
        return c;
    }

    /// <summary>The names of every crash point one save passes, in order (a save over a step that exists passes more).</summary>
    private static List<string> PointsOfASave(bool sameStepTwice)
    {
        var points = new List<string>();
        using var data = TestUtil.TinyData();
        var run = Path.Combine(TestUtil.TempDir(), "run");
        using var t = Trainer.Start(Config(steps: 2), run, data);
        t.TrainStep();
        if (sameStepTwice) t.SaveCheckpoint();
        FaultInjection.Hook = points.Add;
        t.SaveCheckpoint();
        FaultInjection.Hook = null;
        return points;
    }

    private static Dictionary<string, Tensor> FinalWeights(string run)
    {
        var dir = CheckpointStore.Resolve(run);
        return Safetensors.LoadStateDict(Path.Combine(dir, CheckpointStore.ModelFile));
    }

    private static void AssertSameWeights(Dictionary<string, Tensor> expected, Dictionary<string, Tensor> actual)
    {
        Assert.Equal(expected.Keys.OrderBy(k => k), actual.Keys.OrderBy(k => k));
        foreach (var (k, v) in expected) Assert.True(v.equal(actual[k]).all().item<bool>(), k);
    }

    [Theory]
    [InlineData(false, 2)]
    [InlineData(true, 2)]
    [InlineData(true, 1)]
    public void ACrashBetweenAnyTwoFileOperationsOfASaveLeavesARunThatResumesToTheSameBytes(bool sameStepTwice, int keep)
    {
        using var data = TestUtil.TinyData();
        var straightRun = Path.Combine(TestUtil.TempDir(), "straight");
        using (var t = Trainer.Start(Config(steps: 4, keep), straightRun, data)) t.Run();
        var expected = FinalWeights(straightRun);

        var points = PointsOfASave(sameStepTwice);
        Assert.True(points.Count >= (sameStepTwice ? 6 : 5), string.Join(", ", points));
        foreach (var point in points)
        {
            var run = Path.Combine(TestUtil.TempDir(), "run");
            using (var t = Trainer.Start(Config(steps: 4, keep), run, data))
            {
                t.TrainStep();
                t.SaveCheckpoint(); // step 1: complete
                t.TrainStep();
                if (sameStepTwice) t.SaveCheckpoint(); // step 2 once ...
                FaultInjection.Hook = p => { if (p == point) throw new FaultInjection.Crash(p); };
                Assert.Throws<FaultInjection.Crash>(() => t.SaveCheckpoint()); // ... and the crash in saving step 2 (again)
                FaultInjection.Hook = null;
            }
            var resolved = CheckpointStore.Resolve(run);
            long step = CheckpointStore.ReadState(resolved).Step;
            Assert.True(step is 1 or 2, $"{point}: resolved {resolved}");
            if (sameStepTwice) Assert.Equal(2, step); // a complete step 2 existed before the crash: it is never lost
            using (var resumed = Trainer.Resume(run, data)) resumed.Run();
            AssertSameWeights(expected, FinalWeights(run));
        }
    }

    /// <summary>
    /// A full disk (or any I/O error) between two file operations of a save: the save fails, nothing complete is lost,
    /// and the run resumes to the bytes of an uninterrupted one.
    /// </summary>
    [Fact]
    public void AnIoErrorAtAnyPointOfASaveLosesNoCompleteCheckpoint()
    {
        using var data = TestUtil.TinyData();
        var straightRun = Path.Combine(TestUtil.TempDir(), "straight");
        using (var t = Trainer.Start(Config(steps: 4, keep: 1), straightRun, data)) t.Run();
        var expected = FinalWeights(straightRun);

        foreach (var point in PointsOfASave(sameStepTwice: true))
        {
            var run = Path.Combine(TestUtil.TempDir(), "run");
            using (var t = Trainer.Start(Config(steps: 4, keep: 1), run, data))
            {
                t.TrainStep();
                t.SaveCheckpoint();
                t.TrainStep();
                t.SaveCheckpoint();
                FaultInjection.Hook = p => { if (p == point) throw new IOException("No space left on device"); };
                var e = Record.Exception(() => t.SaveCheckpoint());
                FaultInjection.Hook = null;
                if (e is not null) Assert.True(e is IOException or DdpmException, $"{point}: {e}");
            }
            Assert.Equal(2, CheckpointStore.ReadState(CheckpointStore.Resolve(run)).Step);
            using (var resumed = Trainer.Resume(run, data)) resumed.Run();
            AssertSameWeights(expected, FinalWeights(run));
            Assert.Empty(Directory.GetDirectories(Path.Combine(run, CheckpointStore.Folder), ".*"));
        }
    }

    /// <summary>A crash while the best copy is replaced keeps the previous best readable, unpruned, and put back by the next save.</summary>
    [Fact]
    public void ACrashWhileReplacingTheBestCopyKeepsThePreviousBest()
    {
        using var data = TestUtil.TinyData();
        var run = Path.Combine(TestUtil.TempDir(), "run");
        using var t = Trainer.Start(Config(steps: 4), run, data);
        t.TrainStep();
        var first = t.SaveCheckpoint();
        CheckpointStore.SaveBest(run, first, new BestCheckpoint("fd", 5.0, 1));
        long previous = 1;
        foreach (var point in new[] { "checkpoint: previous copy renamed aside", "checkpoint: renamed into place over a previous copy" })
        {
            t.TrainStep();
            var current = t.SaveCheckpoint();
            FaultInjection.Hook = p => { if (p == point) throw new FaultInjection.Crash(p); };
            Assert.Throws<FaultInjection.Crash>(() => CheckpointStore.SaveBest(run, current, new BestCheckpoint("fd", 1.0 / t.Step, t.Step)));
            FaultInjection.Hook = null;
            var best = CheckpointStore.ReadBest(run)!;
            Assert.True(best.Step == previous || best.Step == t.Step, point);
            if (point.Contains("aside", StringComparison.Ordinal)) Assert.Equal(previous, best.Step); // the new copy never landed
            t.TrainStep();
            t.SaveCheckpoint(); // prunes, and puts the best copy back if it was left aside
            Assert.True(File.Exists(Path.Combine(run, CheckpointStore.Folder, CheckpointStore.BestFolder, CheckpointStore.BestFile)), point);
            Assert.Equal(best, CheckpointStore.ReadBest(run));
            previous = best.Step;
        }
    }

    [Fact]
    public void ALatestPointerOutsideTheRunIsIgnored()
    {
        using var data = TestUtil.TinyData();
        var dir = TestUtil.TempDir();
        using (var t = Trainer.Start(Config(steps: 2), Path.Combine(dir, "other"), data)) t.Run();
        var run = Path.Combine(dir, "run");
        using (var t = Trainer.Start(Config(steps: 1), run, data)) t.Run();
        File.WriteAllText(Path.Combine(run, CheckpointStore.Folder, CheckpointStore.LatestFile), "../../other/checkpoints/step_0000002\n");
        Assert.Equal(Path.GetFullPath(Path.Combine(run, CheckpointStore.Folder, CheckpointStore.NameFor(1))), CheckpointStore.Resolve(run));
        Assert.False(CheckpointStore.IsCheckpointName("../step_0000002"));
        Assert.False(CheckpointStore.IsCheckpointName("step_"));
        Assert.True(CheckpointStore.IsCheckpointName("step_0000002"));
    }

    [Fact]
    public void ARunFolderIsTrainedByOneTrainerAtATime()
    {
        using var data = TestUtil.TinyData();
        var run = Path.Combine(TestUtil.TempDir(), "run");
        using (var t = Trainer.Start(Config(steps: 1), run, data)) t.Run();
        using (var first = Trainer.Resume(run, data, c => c.Steps = 3))
        {
            var e = Assert.Throws<DdpmException>(() => Trainer.Resume(run, data, c => c.Steps = 3));
            Assert.Contains("in use by another process", e.Message);
            Assert.Contains($"pid {Environment.ProcessId}", e.Message);
            Assert.Throws<DdpmException>(() => Trainer.Start(Config(steps: 1), run, data));
        }
        using var again = Trainer.Resume(run, data, c => c.Steps = 3); // released by Dispose
        Assert.Equal(1, again.Step);
    }

    [Fact]
    public void ResumingACheckpointFolderIsRefusedAndNamesItsRun()
    {
        using var data = TestUtil.TinyData();
        var run = Path.Combine(TestUtil.TempDir(), "run");
        using (var t = Trainer.Start(Config(steps: 1), run, data)) t.Run();
        var checkpoint = CheckpointStore.Resolve(run);
        var e = Assert.Throws<DdpmException>(() => Trainer.Resume(checkpoint, data));
        Assert.Contains("is a checkpoint, not a run folder", e.Message);
        Assert.Contains(Path.GetFullPath(run), e.Message);
        Assert.False(File.Exists(Path.Combine(checkpoint, Trainer.ConfigFile)));
    }

    [Fact]
    public void ATornLastMetricsLineIsDroppedOnResumeAndCounted()
    {
        using var data = TestUtil.TinyData();
        var run = Path.Combine(TestUtil.TempDir(), "run");
        using (var t = Trainer.Start(Config(steps: 2), run, data)) t.Run();
        File.AppendAllText(Path.Combine(run, MetricsLog.FileName), "{\"step\":3,\"loss\":0.5");
        using var resumed = Trainer.Resume(run, data, c => c.Steps = 3);
        Assert.Equal(1, resumed.TornMetricsLinesDropped);
        Assert.Equal(new long[] { 1, 2 }, MetricsLog.Read(run).Select(r => r.Step));
        resumed.Run();
        Assert.Equal(new long[] { 1, 2, 3 }, MetricsLog.Read(run).Select(r => r.Step));
    }

    [Fact]
    public void AFolderWhoseRunDiedBeforeItsFirstCheckpointStartsAfresh()
    {
        using var data = TestUtil.TinyData();
        var run = Path.Combine(TestUtil.TempDir(), "run");
        using (var t = Trainer.Start(Config(steps: 3), run, data))
        {
            t.TrainStep(); // ... and the process dies: config.json, no checkpoint
        }
        File.WriteAllText(Path.Combine(run, MetricsLog.FileName), "{\"step\":1,\"loss\":0.5,\"lr\":0,\"grad_norm\":1,\"images_per_sec\":1,\"elapsed_sec\":1}\n");
        Assert.False(CheckpointStore.HasCompleteCheckpoint(run));
        using (var t = Trainer.Start(Config(steps: 2), run, data))
        {
            Assert.True(t.StartedOverAnUnfinishedRun);
            Assert.Empty(MetricsLog.Read(run));
            t.Run();
        }
        Assert.Equal(2, CheckpointStore.ReadState(CheckpointStore.Resolve(run)).Step);
        var e = Assert.Throws<DdpmException>(() => Trainer.Start(Config(steps: 2), run, data));
        Assert.Contains("already holds a run", e.Message);
    }

    [Fact]
    public void SettingsAreRefusedBeforeTheRunFolderExists()
    {
        using var data = TestUtil.TinyData(count: 6);
        var run = Path.Combine(TestUtil.TempDir(), "run");
        var c = Config(steps: 1);
        c.BatchSize = 7;
        var e = Assert.Throws<DdpmException>(() => Trainer.Start(c, run, data));
        Assert.Contains("larger than the data set (6 images", e.Message);
        Assert.False(Directory.Exists(run));

        var broken = Assert.Throws<DdpmException>(() => Trainer.Start(Config(steps: 1), run, data,
            model: () => throw new DdpmException("this network cannot be built")));
        Assert.Contains("cannot be built", broken.Message);
        Assert.False(Directory.Exists(run));
    }

    [Fact]
    public void AnUnusableRunFolderIsAOneLineError()
    {
        using var data = TestUtil.TinyData();
        var dir = TestUtil.TempDir();
        var file = Path.Combine(dir, "a-file");
        File.WriteAllText(file, "x");
        foreach (var runDir in new[] { file, Path.Combine(file, "run"), "", "/proc/version/run" })
        {
            var e = Assert.Throws<DdpmException>(() => Trainer.Start(Config(steps: 1), runDir, data));
            Assert.DoesNotContain("\n", e.Message);
        }
        Assert.Equal("x", File.ReadAllText(file));
    }
}

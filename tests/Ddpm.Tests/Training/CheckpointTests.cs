using Ddpm.IO;
using Ddpm.Runs;
using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

public class CheckpointTests
{
    [Fact]
    public void CheckpointRoundTripRestoresWeightsEmaAndOptimizer()
    {
        var dir = TestUtil.TempDir();
        using var data = TestUtil.TinyData();
        string ckpt;
        Dictionary<string, Tensor> model, ema;
        using (var t = Trainer.Start(TestUtil.TinyConfig(steps: 3), Path.Combine(dir, "run"), data))
        {
            for (int i = 0; i < 3; i++) t.TrainStep();
            ckpt = t.SaveCheckpoint();
            model = TestUtil.Parameters(t.Model);
            ema = TestUtil.Parameters(t.EmaModel);
            Assert.NotEqual(model.Values.Sum(v => v.sum().item<float>()), ema.Values.Sum(v => v.sum().item<float>()));
        }
        foreach (var f in new[] { CheckpointStore.ModelFile, CheckpointStore.EmaFile, CheckpointStore.OptimizerFile, CheckpointStore.StateFile })
            Assert.True(File.Exists(Path.Combine(ckpt, f)), f);
        Assert.Equal(ckpt, CheckpointStore.Resolve(Path.Combine(dir, "run")));
        Assert.Equal(3, CheckpointStore.ReadState(ckpt).Step);

        using var resumed = Trainer.Resume(Path.Combine(dir, "run"), data);
        Assert.Equal(3, resumed.Step);
        foreach (var (name, p) in resumed.Model.named_parameters()) Assert.True(p.equal(model[name]).all().item<bool>(), name);
        foreach (var (name, p) in resumed.EmaModel.named_parameters()) Assert.True(p.equal(ema[name]).all().item<bool>(), name);
    }

    [Fact]
    public void ResumedRunEqualsUninterruptedRun()
    {
        var dir = TestUtil.TempDir();
        using var data = TestUtil.TinyData();
        Dictionary<string, Tensor> straight, straightEma;
        using (var t = Trainer.Start(TestUtil.TinyConfig(steps: 6), Path.Combine(dir, "a"), data))
        {
            t.Run();
            straight = TestUtil.Parameters(t.Model);
            straightEma = TestUtil.Parameters(t.EmaModel);
        }
        using (var t = Trainer.Start(TestUtil.TinyConfig(steps: 3), Path.Combine(dir, "b"), data))
            t.Run();
        using (var t = Trainer.Resume(Path.Combine(dir, "b"), data, c => c.Steps = 6))
        {
            Assert.Equal(3, t.Step);
            var result = t.Run();
            Assert.Equal(6, result.Step);
            foreach (var (name, p) in t.Model.named_parameters()) Assert.True(p.equal(straight[name]).all().item<bool>(), $"model {name}");
            foreach (var (name, p) in t.EmaModel.named_parameters()) Assert.True(p.equal(straightEma[name]).all().item<bool>(), $"ema {name}");
        }
        var a = MetricsLog.Read(Path.Combine(dir, "a"));
        var b = MetricsLog.Read(Path.Combine(dir, "b"));
        Assert.Equal(Enumerable.Range(1, 6).Select(i => (long)i), b.Select(r => r.Step));
        Assert.Equal(a.Select(r => r.Loss), b.Select(r => r.Loss));
        Assert.True(File.Exists(Path.Combine(dir, "b", Trainer.SamplesFolder, "final.png")));
    }

    [Fact]
    public void ADecayedRunResumesExactlyAndKeepsItsSpanWhenExtended()
    {
        var dir = TestUtil.TempDir();
        using var data = TestUtil.TinyData();
        TrainConfig Decayed() { var c = TestUtil.TinyConfig(steps: 6); c.LrDecay = Ddpm.Configuration.LearningRateDecay.Cosine; c.LrFinalRatio = 0.1; return c; }
        Dictionary<string, Tensor> straight;
        using (var t = Trainer.Start(Decayed(), Path.Combine(dir, "a"), data))
        {
            t.Run();
            straight = TestUtil.Parameters(t.Model);
        }
        // Stopped after 3 of its 6 steps (as Ctrl+C stops a run), then resumed: the rate is a function of the step alone.
        using (var t = Trainer.Start(Decayed(), Path.Combine(dir, "b"), data))
        {
            for (int i = 0; i < 3; i++) t.TrainStep();
            t.SaveCheckpoint();
        }
        using (var t = Trainer.Resume(Path.Combine(dir, "b"), data))
        {
            Assert.Equal(6, t.Config.LrDecaySteps); // fixed when the run started: its 6 steps
            t.Run();
            foreach (var (name, p) in t.Model.named_parameters()) Assert.True(p.equal(straight[name]).all().item<bool>(), $"model {name}");
        }
        var a = MetricsLog.Read(Path.Combine(dir, "a"));
        // The resumed steps (4 to 6; the first three were stepped by hand, without the log) log the straight run's rates.
        Assert.Equal(a.Skip(3).Select(r => (r.Step, r.Lr)), MetricsLog.Read(Path.Combine(dir, "b")).Select(r => (r.Step, r.Lr)));
        // Extended to 9 steps, the run keeps the span it started with: steps 7 to 9 train at the final rate, 0.1 x 1e-3.
        using (var t = Trainer.Resume(Path.Combine(dir, "b"), data, c => c.Steps = 9))
            t.Run();
        var extended = MetricsLog.Read(Path.Combine(dir, "b")).Where(r => r.Step > 6).ToList();
        Assert.Equal([7L, 8L, 9L], extended.Select(r => r.Step));
        Assert.All(extended, r => Assert.Equal(1e-4, r.Lr, 15));
        Assert.True(a[^1].Lr > 1e-4, "the 6-step run's last update is above the final rate");
    }

    [Fact]
    public void AnInterruptedCheckpointWriteKeepsThePreviousOne()
    {
        var dir = TestUtil.TempDir();
        var run = Path.Combine(dir, "run");
        using var data = TestUtil.TinyData();
        using var t = Trainer.Start(TestUtil.TinyConfig(steps: 4), run, data);
        t.TrainStep();
        var first = t.SaveCheckpoint();
        var firstBytes = File.ReadAllBytes(Path.Combine(first, CheckpointStore.ModelFile));
        // A crash mid-write leaves a hidden temporary folder with partial files and no state.json.
        var partial = Path.Combine(run, CheckpointStore.Folder, ".tmp-" + CheckpointStore.NameFor(2) + "-dead");
        Directory.CreateDirectory(partial);
        File.WriteAllBytes(Path.Combine(partial, CheckpointStore.ModelFile), firstBytes.AsSpan(0, 100).ToArray());
        // ... or a step folder whose state.json never arrived, with the pointer not yet moved.
        var incomplete = Path.Combine(run, CheckpointStore.Folder, CheckpointStore.NameFor(3));
        Directory.CreateDirectory(incomplete);
        File.WriteAllBytes(Path.Combine(incomplete, CheckpointStore.ModelFile), new byte[10]);
        Assert.Equal(first, CheckpointStore.Resolve(run));
        Assert.Equal(firstBytes, File.ReadAllBytes(Path.Combine(first, CheckpointStore.ModelFile)));
        // With the pointer lost too, the newest complete checkpoint is still found.
        File.Delete(Path.Combine(run, CheckpointStore.Folder, CheckpointStore.LatestFile));
        Assert.Equal(first, CheckpointStore.Resolve(run));
    }

    [Fact]
    public void AtomicFileKeepsTheOldContentWhenAWriteFails()
    {
        var path = Path.Combine(TestUtil.TempDir(), "f.txt");
        AtomicFile.WriteAllText(path, "old");
        Assert.Throws<DdpmException>(() => AtomicFile.Write(path, s =>
        {
            s.Write(new byte[] { 1, 2, 3 });
            throw new IOException("disk full");
        }));
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Single(Directory.GetFiles(Path.GetDirectoryName(path)!));
    }

    [Fact]
    public void CorruptOrMissingCheckpointsAreOneLineErrors()
    {
        var dir = TestUtil.TempDir();
        var e1 = Assert.Throws<DdpmException>(() => CheckpointStore.Resolve(Path.Combine(dir, "nope")));
        Assert.Contains("nope", e1.Message);
        var ck = Path.Combine(dir, "ck");
        Directory.CreateDirectory(ck);
        File.WriteAllText(Path.Combine(ck, CheckpointStore.StateFile), "{ not json");
        var e2 = Assert.Throws<DdpmException>(() => CheckpointStore.ReadState(ck));
        Assert.Contains(CheckpointStore.StateFile, e2.Message);
        Assert.DoesNotContain("\n", e2.Message);
        using var model = new Ddpm.Models.UNet(TestUtil.TinyUNet());
        File.WriteAllBytes(Path.Combine(ck, "bad.safetensors"), new byte[] { 1, 2, 3, 4, 5, 6, 7, 8, 9 });
        var e3 = Assert.Throws<DdpmException>(() => CheckpointStore.LoadWeights(model, Path.Combine(ck, "bad.safetensors")));
        Assert.Contains("bad.safetensors", e3.Message);
    }

    [Fact]
    public void NaNInTrainingStopsWithAnErrorAndKeepsTheCheckpoint()
    {
        var dir = TestUtil.TempDir();
        var run = Path.Combine(dir, "run");
        using var good = TestUtil.TinyData();
        string first;
        using (var t = Trainer.Start(TestUtil.TinyConfig(steps: 2), run, good))
        {
            t.Run();
            first = CheckpointStore.Resolve(run);
        }
        var bytes = File.ReadAllBytes(Path.Combine(first, CheckpointStore.ModelFile));
        using var bad = TestUtil.TinyData();
        bad.Images.fill_(float.NaN);
        using var resumed = Trainer.Resume(run, bad, c => c.Steps = 5);
        var e = Assert.Throws<DdpmException>(() => resumed.Run());
        Assert.Contains("step 2", e.Message);
        Assert.Equal(first, CheckpointStore.Resolve(run));
        Assert.Equal(bytes, File.ReadAllBytes(Path.Combine(first, CheckpointStore.ModelFile)));
    }

    [Fact]
    public void StartingInAFolderThatHoldsARunIsRefused()
    {
        var run = Path.Combine(TestUtil.TempDir(), "run");
        using var data = TestUtil.TinyData();
        using (var t = Trainer.Start(TestUtil.TinyConfig(steps: 1), run, data)) t.Run();
        var e = Assert.Throws<DdpmException>(() => Trainer.Start(TestUtil.TinyConfig(steps: 1), run, data));
        Assert.Contains("already holds a run", e.Message);
    }

    [Fact]
    public void ImpossibleOptionsAreRejected()
    {
        var c = TestUtil.TinyConfig();
        c.BatchSize = 0;
        Assert.Equal("batch_size", Assert.Throws<DdpmException>(c.Validate).Setting);
        c = TestUtil.TinyConfig();
        c.Schedule = (Ddpm.Diffusion.ScheduleKind)7; // only a cast can make a value no name spells
        Assert.Equal("schedule", Assert.Throws<DdpmException>(c.Validate).Setting);
        c = TestUtil.TinyConfig();
        c.EmaDecay = 1.5;
        Assert.Equal("ema_decay 1.5: must be in [0, 1)", Assert.Throws<DdpmException>(c.Validate).Message);
        using var rgb = TestUtil.TinyData(channels: 3);
        var e = Assert.Throws<DdpmException>(() => Trainer.Start(TestUtil.TinyConfig(), Path.Combine(TestUtil.TempDir(), "r"), rgb));
        Assert.Contains("image_size and channels", e.Message);
    }
}

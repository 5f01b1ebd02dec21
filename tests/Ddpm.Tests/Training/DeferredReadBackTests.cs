using Ddpm.Runs;
using Ddpm.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

/// <summary>
/// The training loop keeps the loss and the gradient norm on the device between log lines. These tests check that
/// nothing numeric changed by it: the clipping equals libtorch's clip_grad_norm_ bit for bit, a window's figures are
/// those of the steps read one by one, and divergence is still caught, at the step where it happened.
/// </summary>
public class DeferredReadBackTests
{
    private static Parameter[] ParametersWithGradients(long seed, double gradScale, params long[][] shapes)
    {
        using var gen = new Generator((ulong)seed, CPU);
        var result = new Parameter[shapes.Length];
        for (int i = 0; i < shapes.Length; i++)
        {
            result[i] = new Parameter(randn(shapes[i], generator: gen));
            result[i].grad = randn(shapes[i], generator: gen) * gradScale;
        }
        return result;
    }

    [Theory]
    [InlineData(1.0, 10.0)]     // joint norm ~ 10 * sqrt(n): clipped
    [InlineData(1e3, 1e-3)]     // far below the clip: the coefficient clamps at 1
    [InlineData(double.PositiveInfinity, 5.0)] // clipping off
    public void ClippingEqualsLibtorchsClipGradNormBitForBit(double maxNorm, double gradScale)
    {
        using var scope = NewDisposeScope();
        long[][] shapes = { new long[] { 8, 3, 3, 3 }, new long[] { 8 }, new long[] { 16, 8 }, new long[] { 1 } };
        var ours = ParametersWithGradients(3, gradScale, shapes);
        var theirs = ParametersWithGradients(3, gradScale, shapes);
        double joined = Math.Sqrt(theirs.Sum(SquaredGradient)); // the 2-norm of all gradients joined, before clipping

        var norm = GradientClipping.ClipGlobalNorm(ours, maxNorm)!;
        double reference = nn.utils.clip_grad_norm_(theirs, maxNorm);

        Assert.Equal(reference, (double)norm.item<float>());
        for (int i = 0; i < shapes.Length; i++)
            Assert.True(ours[i].grad!.equal(theirs[i].grad!).all().item<bool>(), $"gradient {i} differs from clip_grad_norm_'s");
        // Independent of libtorch: the norm reported is the joined one, the gradients' norm after is at most maxNorm.
        Assert.True(Math.Abs(norm.item<float>() - joined) <= 1e-5 * joined);
        double after = Math.Sqrt(ours.Sum(SquaredGradient));
        Assert.True(after <= Math.Min(maxNorm, joined) * (1 + 1e-5));
    }

    private static double SquaredGradient(Parameter p) =>
        p.grad!.to(ScalarType.Float64).square().sum().item<double>();

    [Fact]
    public void ClippingWithoutGradientsReturnsNull()
    {
        using var scope = NewDisposeScope();
        var p = new Parameter(zeros(3));
        Assert.Null(GradientClipping.ClipGlobalNorm(new[] { p }, 1.0));
    }

    [Fact]
    public void TheGuardNamesTheFirstNonFiniteStepAndWhatWasNotFinite()
    {
        using var scope = NewDisposeScope();
        using (var guard = new DivergenceGuard(CPU))
        {
            guard.Observe(0, tensor(0.5f), tensor(2f));
            guard.Observe(1, tensor(0.4f), null);
            guard.ThrowIfDiverged();
            guard.Observe(2, tensor(0.3f), tensor(float.PositiveInfinity));
            guard.Observe(3, tensor(float.NaN), tensor(float.NaN));
            var e = Assert.Throws<DdpmException>(guard.ThrowIfDiverged);
            Assert.Contains("step 2", e.Message);
            Assert.Contains("gradient norm is ∞", e.Message.Replace("Infinity", "∞"));
        }
        using (var guard = new DivergenceGuard(CPU))
        {
            guard.Observe(7, tensor(float.NaN), tensor(float.NaN));
            var e = Assert.Throws<DdpmException>(guard.ThrowIfDiverged);
            Assert.Contains("step 7", e.Message);
            Assert.Contains("loss is NaN", e.Message);
            Assert.DoesNotContain("\n", e.Message);
        }
    }

    [Fact]
    public void AWindowReportsTheSameFiguresAsItsStepsReadOneByOne()
    {
        using var data = TestUtil.TinyData();
        var config = TestUtil.TinyConfig(steps: 5);
        config.GradClip = 0.05; // small enough that clipping acts
        using var byStep = Trainer.Start(config, Path.Combine(TestUtil.TempDir(), "a"), data);
        using var deferred = Trainer.Start(config, Path.Combine(TestUtil.TempDir(), "b"), data);

        var steps = Enumerable.Range(0, 5).Select(_ => byStep.TrainStep()).ToArray();
        for (int i = 0; i < 5; i++) deferred.Advance();
        var window = deferred.ReadWindow();

        Assert.Equal(5, window.Steps);
        Assert.Equal(4, window.LastStep);
        double sum = 0;
        foreach (var s in steps) sum += s.Loss;
        Assert.Equal(sum / 5, window.MeanLoss);
        Assert.Equal(steps[^1].Loss, window.LastLoss);
        Assert.Equal(steps[^1].GradNorm, window.GradNorm);
        Assert.Equal(steps[^1].LearningRate, window.LearningRate);
        Assert.True(steps.All(s => s.GradNorm > 0.05), "the test means clipping to act on every step");
        var a = TestUtil.Parameters(byStep.Model);
        var b = TestUtil.Parameters(deferred.Model);
        foreach (var (name, value) in a) Assert.True(value.equal(b[name]).all().item<bool>(), name);
        Assert.Throws<InvalidOperationException>(() => deferred.ReadWindow());
    }

    [Fact]
    public void ADivergedStepIsReportedAtTheNextReadBackAndNeverSaved()
    {
        using var bad = TestUtil.TinyData();
        bad.Images.fill_(float.NaN);
        var run = Path.Combine(TestUtil.TempDir(), "run");
        using var t = Trainer.Start(TestUtil.TinyConfig(steps: 4), run, bad);
        t.Advance();
        t.Advance(); // no read-back yet: nothing thrown
        var e = Assert.Throws<DdpmException>(() => t.SaveCheckpoint());
        Assert.Contains("step 0", e.Message);
        // Nothing was saved before: the message must not promise a checkpoint.
        Assert.Contains("the run has no checkpoint yet", e.Message);
        Assert.DoesNotContain("is kept", e.Message);
        Assert.False(Directory.Exists(Path.Combine(run, CheckpointStore.Folder)) &&
                     Directory.EnumerateDirectories(Path.Combine(run, CheckpointStore.Folder)).Any());
        Assert.Throws<DdpmException>(() => t.ReadWindow());
        Assert.Throws<DdpmException>(() => t.SaveSampleGrid(Path.Combine(run, "grid.png")));
        Assert.False(File.Exists(Path.Combine(run, "grid.png")));
    }

    [Fact]
    public void TheDivergenceMessageNamesTheCheckpointThatIsKept()
    {
        using var data = TestUtil.TinyData();
        var run = Path.Combine(TestUtil.TempDir(), "run");
        using (var t = Trainer.Start(TestUtil.TinyConfig(steps: 6), run, data))
        {
            t.Advance();
            t.Advance();
            t.SaveCheckpoint(); // step 2
            data.Images.fill_(float.NaN); // on the CPU the trainer gathers its batches from this very tensor
            t.Advance();
            var e = Assert.Throws<DdpmException>(() => t.ReadWindow());
            Assert.Contains("diverged at step 2", e.Message);
            Assert.Contains("the checkpoint of step 2 is kept", e.Message);
            Assert.DoesNotContain("no checkpoint", e.Message);
        }
        // Resumed from that checkpoint, the run knows it has one before saving anything.
        using var resumed = Trainer.Resume(run, data);
        resumed.Advance();
        var again = Assert.Throws<DdpmException>(() => resumed.ReadWindow());
        Assert.Contains("the checkpoint of step 2 is kept", again.Message);
    }

    [Fact]
    public void OnTheCpuBatchesAreGatheredFromTheDataSetItself()
    {
        using var data = TestUtil.TinyData();
        using var t = Trainer.Start(TestUtil.TinyConfig(steps: 1), Path.Combine(TestUtil.TempDir(), "run"), data);
        Assert.False(t.DataHeldOnDevice);
        var batches = new Ddpm.Data.BatchSampler(data.Count, 4, 7);
        using var fromTensor = batches.GetBatch(data.Images, 3);
        using var fromData = batches.GetBatch(data, 3);
        Assert.True(fromTensor.equal(fromData).all().item<bool>());
        var idx = batches.IndicesForStep(3);
        for (int i = 0; i < idx.Length; i++)
            Assert.True(fromTensor[i].equal(data.Images[idx[i]]).all().item<bool>());
    }
}

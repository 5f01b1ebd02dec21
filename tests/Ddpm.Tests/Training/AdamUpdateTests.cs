using Ddpm.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

/// <summary>
/// The trainer's own Adam update against TorchSharp's <c>optim.Adam.step()</c>, whose arithmetic it must repeat bit for
/// bit (checkpoints, resumes and loss curves made before it stay valid). Why it exists at all (TorchSharp's version lets
/// a temporary Scalar be finalized while libtorch reads it) is not tested here: the race needs a collection on another
/// thread inside a window of microseconds, and a test of TorchSharp's step() under collection pressure did not hit it
/// in three runs of 60,000 updates; a loop of one addcdiv_ with a temporary Scalar did within 175,000 calls.
/// </summary>
public class AdamUpdateTests
{
    /// <summary>Three seeded parameters and an optimizer over them.</summary>
    private static Adam Setup(Func<IEnumerable<Parameter>, Adam> make, out Parameter[] parameters)
    {
        manual_seed(3);
        var ps = new[]
        {
            new Parameter(randn(4, 3)), new Parameter(randn(5)), new Parameter(randn(2, 2, 3)),
        };
        foreach (var p in ps) p.DetachFromDisposeScope();
        parameters = ps;
        return make(ps);
    }

    private static void SetGradients(Parameter[] ps, int step)
    {
        using var gen = new Generator((ulong)(100 + step), CPU);
        foreach (var p in ps)
        {
            // The middle parameter has no gradient on odd steps: both updates must skip it (and its step count).
            if (p.shape.Length == 1 && step % 2 == 1) { p.grad = null; continue; }
            using var g = randn(p.shape, generator: gen).mul_(Math.Pow(10, step % 3 - 1));
            p.grad = g.clone().DetachFromDisposeScope();
        }
    }

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [Fact]
    public void EqualsTorchSharpsAdamBitForBit()
    {
        using var scope = NewDisposeScope();
        var mineAdam = Setup(ps => optim.Adam(ps, 1e-3, 0.9, 0.999, 1e-8), out var mine);
        var theirAdam = Setup(ps => optim.Adam(ps, 1e-3, 0.9, 0.999, 1e-8), out var theirs);
        using var update = new AdamUpdate(mineAdam);
        for (int step = 0; step < 7; step++)
        {
            double lr = 1e-3 * (step + 1) / 4; // a warm-up: the group's learning rate changes between steps
            foreach (var g in mineAdam.ParamGroups) g.LearningRate = lr;
            foreach (var g in theirAdam.ParamGroups) g.LearningRate = lr;
            SetGradients(mine, step);
            SetGradients(theirs, step);
            update.Apply();
            theirAdam.step();
        }
        for (int i = 0; i < mine.Length; i++)
        {
            Assert.True(Same(mine[i], theirs[i]), $"parameter {i} differs");
            var a = (Adam.State)mineAdam.state_dict().State[i];
            var b = (Adam.State)theirAdam.state_dict().State[i];
            Assert.Equal(b.step, a.step);
            Assert.True(Same(a.exp_avg, b.exp_avg) && Same(a.exp_avg_sq, b.exp_avg_sq), $"moments of parameter {i} differ");
        }
        Assert.Equal(4, ((Adam.State)mineAdam.state_dict().State[1]).step); // skipped on 3 of 7 steps
        Setup(ps => optim.Adam(ps), out var start);
        Assert.False(Same(mine[0], start[0]), "the parameters must have moved");
    }

    [Fact]
    public void RefusesWhatItDoesNotImplement()
    {
        using var scope = NewDisposeScope();
        var withDecay = Setup(ps => optim.Adam(ps, weight_decay: 0.1), out _);
        Assert.Throws<NotSupportedException>(() => new AdamUpdate(withDecay));
        var amsgrad = Setup(ps => optim.Adam(ps, amsgrad: true), out _);
        Assert.Throws<NotSupportedException>(() => new AdamUpdate(amsgrad));
    }
}

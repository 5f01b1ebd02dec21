using Ddpm.Configuration;
using System.Text.Json;
using Ddpm.Runs;
using Ddpm.Training;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

/// <summary>
/// What one optimizer update does to the weights, checked against Adam's published update rule (Kingma and Ba 2015,
/// Algorithm 1, with PyTorch's placement of eps: theta -= lr m_hat / (sqrt(v_hat) + eps)) and gradients computed
/// here from a replica of the step (<see cref="StepReplica"/>).
/// </summary>
public class TrainerUpdateTests
{
    private const double Beta1 = 0.9, Beta2 = 0.999; // TrainConfig's defaults, which these tests keep

    /// <summary>Tiny run without dropout (the replica's forward pass must be deterministic).</summary>
    private static TrainConfig Config(long steps)
    {
        var c = TestUtil.TinyConfig(steps);
        c.Model!.Dropout = 0;
        return c;
    }

    private static Dictionary<string, Tensor> Snapshot(nn.Module m) =>
        m.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().to(ScalarType.Float64).clone());

    /// <summary>Adam's first update (m = v = 0 before): m_hat = g, v_hat = g^2, so the step is -lr g / (|g| + eps).</summary>
    private static Tensor FirstAdamStep(Tensor g, double lr, double eps) => -lr * g / (g.abs() + eps);

    [Fact]
    public void ClippingScalesTheGradientByClipOverTheGlobalNormAndReportsTheNormBeforeIt()
    {
        using var scope = NewDisposeScope();
        using var data = TestUtil.TinyData();
        const double lr = 1e-2, eps = 1e-2;
        // Two runs from the same start: one clipped hard, one with a clip far above the norm.
        var updates = new Dictionary<double, (Dictionary<string, Tensor> Before, Dictionary<string, Tensor> After, double Reported)>();
        Dictionary<string, Tensor>? g = null;
        foreach (var clip in new[] { 0.05, 1e6 })
        {
            var c = Config(steps: 1);
            c.LearningRate = lr;
            c.WarmupSteps = 0;
            // eps of the order of the clipped gradient's elements makes Adam's first step depend on the gradient's
            // scale (with eps = 1e-8 it would be lr sign(g) whatever the clipping).
            c.AdamEps = eps;
            c.GradClip = clip;
            using var t = Trainer.Start(c, Path.Combine(TestUtil.TempDir(), "run"), data);
            StepReplica.Perturb(t.Model, seed: 5);
            var before = Snapshot(t.Model);
            if (g is null)
            {
                using var replica = new StepReplica(t.Config, data, step: 0);
                using var clone = StepReplica.Clone(t.Model);
                g = StepReplica.Gradients(clone, replica.PerExampleLoss(clone, replica.X0).mean());
            }
            var stats = t.TrainStep();
            updates[clip] = (before, Snapshot(t.Model), stats.GradNorm);
        }

        double norm = StepReplica.GlobalNorm(g!.Values);
        Assert.True(norm > 0.05 * 10, $"the test needs a gradient norm well above the clip 0.05; it is {norm}");
        foreach (var (clip, (before, after, reported)) in updates)
        {
            // The reported norm is the global norm before clipping, whatever the clip. The replica's forward pass
            // matches the trainer's to float32 rounding, so the norms agree to 1e-5 relative.
            Assert.Equal(norm, reported, norm * 1e-5);
            // Scaled by clip / ||g|| when ||g|| > clip (PyTorch divides by ||g|| + 1e-6: 1e-6 relative here), else untouched.
            double scale = Math.Min(1.0, clip / norm);
            double worst = 0, alternativeGap = 0;
            foreach (var (name, grad) in g)
            {
                var expected = before[name] + FirstAdamStep(grad * scale, lr, eps);
                // Tolerance: 2e-6 absolute covers float32 rounding of weights of size up to ~4 (ulp 4.8e-7) plus the
                // replica's 1e-5 relative gradient error times lr.
                worst = Math.Max(worst, (after[name] - expected).abs().max().item<double>());
                // What clipping each tensor by its own norm would have given: must be told apart from the global rule.
                double own = StepReplica.GlobalNorm(new[] { grad });
                double perTensor = own > 0 ? Math.Min(1.0, clip / own) : 1.0;
                if (Math.Abs(perTensor - scale) > 1e-3 * scale)
                    alternativeGap = Math.Max(alternativeGap, (after[name] - (before[name] + FirstAdamStep(grad * perTensor, lr, eps))).abs().max().item<double>());
            }
            Assert.True(worst < 2e-6, $"clip {clip}: the update differs from Adam on the scaled gradient by {worst}");
            if (clip < norm) Assert.True(alternativeGap > 1e-4, $"per-tensor clipping would be indistinguishable ({alternativeGap})");
        }
        // The clipped and the unclipped runs moved the weights differently (the test can tell the two rules apart).
        var (b0, a0, _) = updates[0.05];
        var (_, a1, _) = updates[1e6];
        Assert.True(a0.Keys.Max(k => (a0[k] - a1[k]).abs().max().item<double>()) > 1e-3);
        Assert.True(a0.Keys.All(k => b0[k].equal(updates[1e6].Before[k]).all().item<bool>()), "the two runs must start from the same weights");
    }

    [Fact]
    public void ImportanceSampledStepsWeightEachLossByOneOverTPt()
    {
        using var scope = NewDisposeScope();
        using var data = TestUtil.TinyData();
        var run = Path.Combine(TestUtil.TempDir(), "run");
        var c = Config(steps: 1);
        c.Timesteps = 2;
        c.BatchSize = 8;
        c.TimestepSampler = TimestepSamplerKind.Importance;
        c.GradClip = 0;
        string checkpoint;
        using (var t = Trainer.Start(c, run, data))
        {
            StepReplica.Perturb(t.Model, seed: 9);
            checkpoint = t.SaveCheckpoint();
        }
        // A warmed-up history: ten losses of 1 at t = 0 and ten of 3 at t = 1, so the root mean squares are 1 and 3 and
        // p = (1/4, 3/4) * 0.999 + 0.001 / 2 = (0.25025, 0.74975) (reference.md section 3); weights 1 / (T p_t) = 1.998..., 0.6669...
        var state = CheckpointStore.ReadState(checkpoint);
        state.TimestepSampler = new TimestepSamplerState
        {
            Counts = new[] { 10, 10 },
            History = new[] { Enumerable.Repeat(1.0, 10).ToArray(), Enumerable.Repeat(3.0, 10).ToArray() },
        };
        File.WriteAllText(Path.Combine(checkpoint, CheckpointStore.StateFile), JsonSerializer.Serialize(state, TrainConfig.Json));
        double[] p = { 0.25025, 0.74975 };
        double[] w = { 1 / (2 * p[0]), 1 / (2 * p[1]) };

        using var resumed = Trainer.Resume(run, data);
        using var replica = new StepReplica(resumed.Config, data, step: 0, probabilities: p);
        Assert.Contains(0L, replica.Ts); // the seeded draw holds both timesteps, so the weights differ within the batch
        Assert.Contains(1L, replica.Ts);
        using var clone = StepReplica.Clone(resumed.Model);
        var losses = replica.PerExampleLoss(clone, replica.X0);
        var weights = tensor(replica.Ts.Select(t => (float)w[t]).ToArray());
        var weighted = (losses * weights).mean();
        var g = StepReplica.Gradients(clone, weighted);
        var l = losses.detach().to(ScalarType.Float64).data<double>().ToArray();
        double expectedLoss = l.Select((li, i) => li * w[replica.Ts[i]]).Average();
        double unweighted = l.Average();

        var stats = resumed.TrainStep();
        // float32 forward passes of the same network on the same inputs: 1e-5 relative.
        Assert.Equal(expectedLoss, stats.Loss, expectedLoss * 1e-5);
        Assert.True(Math.Abs(unweighted - stats.Loss) > 100 * expectedLoss * 1e-5, "the weights must change the loss measurably");
        // The back-propagated loss is the weighted one: the gradient's norm is that of the weighted loss.
        double norm = StepReplica.GlobalNorm(g.Values);
        Assert.Equal(norm, stats.GradNorm, norm * 1e-5);

        // The sampler records the unweighted per-example losses at their t, oldest first (the last k_t of its history).
        var after = CheckpointStore.ReadState(resumed.SaveCheckpoint()).TimestepSampler!;
        for (int t = 0; t < 2; t++)
        {
            var mine = Enumerable.Range(0, l.Length).Where(i => replica.Ts[i] == t).Select(i => l[i]).ToArray();
            var recorded = after.History[t][^mine.Length..];
            for (int k = 0; k < mine.Length; k++) Assert.Equal(mine[k], recorded[k], mine[k] * 1e-5);
        }
    }

    [Theory]
    [InlineData(LearningRateDecay.None)]
    [InlineData(LearningRateDecay.Cosine)]
    [InlineData(LearningRateDecay.Linear)]
    public void AdamAppliesTheScheduledLearningRateAtEachStep(LearningRateDecay decay)
    {
        using var scope = NewDisposeScope();
        using var data = TestUtil.TinyData();
        var c = TestUtil.TinyConfig(steps: 6);
        c.LearningRate = 1e-2;
        c.WarmupSteps = decay == LearningRateDecay.None ? 4 : 2;
        c.LrDecay = decay;
        if (decay != LearningRateDecay.None) c.LrFinalRatio = 0.2;
        using var t = Trainer.Start(c, Path.Combine(TestUtil.TempDir(), "run"), data);
        var names = t.Model.named_parameters().Select(p => p.name).ToArray();
        for (long s = 0; s < 6; s++)
        {
            var before = Snapshot(t.Model);
            t.TrainStep();
            var after = Snapshot(t.Model);
            // Adam's moments after this update, from the optimizer state the checkpoint writes (state.{i}.*, PyTorch's names).
            var opt = Safetensors.LoadStateDict(Path.Combine(t.SaveCheckpoint(), CheckpointStore.OptimizerFile));
            // The step theta' - theta = -lr u with u = m_hat / (sqrt(v_hat) + eps), m_hat = m / (1 - b1^k),
            // v_hat = v / (1 - b2^k), k = s + 1 updates so far. Least squares over all elements gives the lr Adam used.
            double k = s + 1, num = 0, den = 0;
            for (int i = 0; i < names.Length; i++)
            {
                Assert.Equal(k, opt[$"state.{i}.step"].item<float>());
                var m = opt[$"state.{i}.exp_avg"].to(ScalarType.Float64) / (1 - Math.Pow(Beta1, k));
                var v = opt[$"state.{i}.exp_avg_sq"].to(ScalarType.Float64) / (1 - Math.Pow(Beta2, k));
                var u = -m / (v.sqrt() + c.AdamEps);
                var delta = after[names[i]] - before[names[i]];
                num += (delta * u).sum().item<double>();
                den += (u * u).sum().item<double>();
            }
            double applied = num / den;
            // The documented warm-up (LearningRate.At, Ho et al.'s linear warm-up): lr min(1, (s + 1) / warmup),
            // i.e. 0.0025, 0.005, 0.0075, 0.01, 0.01, 0.01. With a decay: warm-up 2 (0.005, 0.01), then from step 2
            // the fall over the remaining 4 steps of the run (the span defaults to its 6 steps), p = (s - 2) / 4, to
            // 0.2 x the base: cosine 0.01, 0.2 + 0.8 cos^2(pi/8), 0.6, 0.2 + 0.8 cos^2(3 pi/8) (x 0.01); linear 0.01,
            // 0.008, 0.006, 0.004. Float32 weights of size ~1 move by ~lr: 1e-4 relative.
            double p = (s - 2) / 4.0;
            double expected = decay switch
            {
                LearningRateDecay.None => 1e-2 * Math.Min(1.0, (s + 1) / 4.0),
                _ when s < 2 => 1e-2 * (s + 1) / 2.0,
                LearningRateDecay.Cosine => 1e-2 * (0.2 + 0.8 * Math.Pow(Math.Cos(Math.PI * p / 2), 2)),
                _ => 1e-2 * (0.2 + 0.8 * (1 - p)),
            };
            Assert.True(Math.Abs(applied - expected) < 1e-4 * expected, $"step {s}: Adam applied lr {applied}, expected {expected}");
            foreach (var x in opt.Values) x.Dispose();
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void EmaFollowsTheRecurrenceWithTheDocumentedDecay(bool warmup)
    {
        using var scope = NewDisposeScope();
        using var data = TestUtil.TinyData();
        var c = TestUtil.TinyConfig(steps: 6);
        c.EmaDecay = 0.6;
        c.EmaWarmup = warmup;
        c.EmaPower = 0.75;
        c.EmaInvGamma = 2.0;
        // decay(n) = min(0.6, 1 - (1 + n / 2)^(-3/4)) for the update after n earlier ones (reference.md section 3):
        // n = 0..5: 0, 0.262212, 0.405396, 0.497027, 0.561309, capped 0.6 (1 - 3.5^-0.75 = 0.609205). Without warm-up, 0.6 throughout.
        double[] decays = warmup ? new[] { 0, 0.262212, 0.405396, 0.497027, 0.561309, 0.6 } : Enumerable.Repeat(0.6, 6).ToArray();
        using var t = Trainer.Start(c, Path.Combine(TestUtil.TempDir(), "run"), data);
        var ema = Snapshot(t.Model); // the average starts equal to the model
        foreach (var (name, p) in t.EmaModel.named_parameters()) Assert.True(p.equal(ema[name].to(ScalarType.Float32)).all().item<bool>(), name);
        for (int n = 0; n < 6; n++)
        {
            t.TrainStep();
            var p = Snapshot(t.Model);
            double d = warmup ? Math.Min(0.6, 1 - Math.Pow(1 + n / 2.0, -0.75)) : 0.6;
            Assert.Equal(decays[n], d, 5);
            foreach (var name in ema.Keys.ToList()) ema[name] = d * ema[name] + (1 - d) * p[name];
            foreach (var (name, avg) in t.EmaModel.named_parameters())
            {
                // float32 in-place updates against a float64 recurrence: a few ulps of weights of size ~1.
                double err = (avg.to(ScalarType.Float64) - ema[name]).abs().max().item<double>();
                Assert.True(err < 1e-6, $"step {n}, {name}: EMA off by {err}");
            }
        }
        // The average lags the weights (a test that compared the model with itself would pass here too: it must not).
        Assert.True(ema.Keys.Max(k => (ema[k] - Snapshot(t.Model)[k]).abs().max().item<double>()) > 1e-4);
    }
}

using Ddpm.Configuration;
using Ddpm.Runtime;
using Ddpm.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

public class ScheduleOfTrainingTests
{
    [Fact]
    public void WarmupIsLinearThenConstant()
    {
        Assert.Equal(2e-4 / 5000, LearningRate.At(2e-4, 5000, 0), 15);
        Assert.Equal(2e-4 * 2500 / 5000, LearningRate.At(2e-4, 5000, 2499), 15);
        Assert.Equal(2e-4, LearningRate.At(2e-4, 5000, 4999), 15);
        Assert.Equal(2e-4, LearningRate.At(2e-4, 5000, 100_000), 15);
        Assert.Equal(1e-3, LearningRate.At(1e-3, 0, 0), 15);
    }

    [Fact]
    public void CosineDecayFallsFromTheBaseRateAfterTheWarmupToItsFinalRateAtItsLastStep()
    {
        // Warm-up 100, decay to step 1100: progress p = (step - 100) / 1000 and rate = base cos^2(pi p / 2) for a final
        // ratio of 0 (the half-cosine (1 + cos(pi p)) / 2 written as a square, an identity the code does not use).
        var s = new LearningRateSchedule(1e-3, 100, LearningRateDecay.Cosine, 1100);
        Assert.Equal(1e-3 * 50 / 100, s.At(49), 15);                          // the warm-up is the paper's
        Assert.Equal(1e-3, s.At(99), 15);
        Assert.Equal(1e-3, s.At(100), 15);                                    // p = 0
        Assert.Equal(1e-3 / 2, s.At(600), 15);                                // p = 1/2: half way
        Assert.Equal(1e-3 * Math.Pow(Math.Cos(Math.PI / 8), 2), s.At(350), 15);   // p = 1/4
        double last = 1e-3 * Math.Pow(Math.Sin(Math.PI * 0.0005), 2);        // p = 0.999: cos^2(pi/2 - pi/2000)
        Assert.Equal(last, s.At(1099), last * 1e-9);
        Assert.True(s.At(1099) > 0, "the last update of a run that ends at the decay's end still moves the weights");
        Assert.Equal(0.0, s.At(1100));
        Assert.Equal(0.0, s.At(5000));                                      // constant after the decay
        // A final ratio r lifts the whole curve: r + (1 - r) x the fall.
        var floor = s with { FinalRatio = 0.1 };
        Assert.Equal(1e-3 * (0.1 + 0.9 / 2), floor.At(600), 15);
        Assert.Equal(1e-4, floor.At(9999), 15);
    }

    [Fact]
    public void LinearDecayFallsAlongAStraightLineAndWithoutWarmupStartsAtTheBaseRate()
    {
        var s = new LearningRateSchedule(2e-3, 0, LearningRateDecay.Linear, 400, FinalRatio: 0.25);
        Assert.Equal(2e-3, s.At(0), 15);
        Assert.Equal(2e-3 * (0.25 + 0.75 * 0.75), s.At(100), 15);             // p = 1/4
        Assert.Equal(2e-3 * (0.25 + 0.75 * 0.5), s.At(200), 15);
        Assert.Equal(5e-4, s.At(400), 15);
        Assert.Equal(5e-4, s.At(401), 15);
        // A span that ends within the warm-up: the warm-up as always, then the final rate at once.
        var early = new LearningRateSchedule(2e-3, 100, LearningRateDecay.Cosine, 50, FinalRatio: 0.25);
        Assert.Equal(2e-3 * 50 / 100, early.At(49), 15);
        Assert.Equal(2e-3, early.At(99), 15);
        Assert.Equal(5e-4, early.At(100), 15);
        // none is the paper's schedule whatever the span says.
        var none = s with { Decay = LearningRateDecay.None, WarmupSteps = 10 };
        for (long step = 0; step < 500; step += 37) Assert.Equal(LearningRate.At(2e-3, 10, step), none.At(step));
    }

    [Fact]
    public void EmaDecayFollowsTheWarmupFormulaAndItsCap()
    {
        using var a = nn.Linear(2, 2);
        using var b = nn.Linear(2, 2);
        var ema = new Ema(a, b, maxDecay: 0.999, warmup: true, power: 0.75, invGamma: 1.0);
        Assert.Equal(0.0, ema.DecayAt(0), 12);                               // 1 - 1^-0.75
        Assert.Equal(1 - Math.Pow(11, -0.75), ema.DecayAt(10), 12);
        Assert.Equal(0.999, ema.DecayAt(10_000_000), 12);                    // capped
        var fixedEma = new Ema(a, b, maxDecay: 0.9, warmup: false);
        Assert.Equal(0.9, fixedEma.DecayAt(0), 12);
    }

    [Fact]
    public void EmaAveragesParametersAndCopiesBuffers()
    {
        manual_seed(3);
        using var model = nn.Sequential(("lin", nn.Linear(3, 2)), ("bn", nn.BatchNorm1d(2)));
        using var avg = nn.Sequential(("lin", nn.Linear(3, 2)), ("bn", nn.BatchNorm1d(2)));
        var ema = new Ema(model, avg, maxDecay: 0.9, warmup: false);
        var before = TestUtil.Parameters(avg);
        var p = TestUtil.Parameters(model);
        // Give the model's buffer a value the average must copy, not average.
        using (no_grad()) model.named_buffers().First(b => b.name == "bn.running_mean").buffer.fill_(5f);
        ema.Update(0);
        foreach (var (name, value) in avg.named_parameters())
        {
            var expected = before[name] * 0.9 + p[name] * 0.1;
            Assert.True(value.allclose(expected, rtol: 1e-6, atol: 1e-7), name);
        }
        var rm = avg.named_buffers().First(b => b.name == "bn.running_mean").buffer;
        Assert.True(rm.allclose(full(2, 5f)));
    }

    [Fact]
    public void StepSeedsAreDeterministicAndDistinct()
    {
        Assert.Equal(StepRandom.SeedFor(1, 2, 0), StepRandom.SeedFor(1, 2, 0));
        var seeds = new HashSet<long>();
        for (long s = 0; s < 1000; s++) { seeds.Add(StepRandom.SeedFor(1, s, 0)); seeds.Add(StepRandom.SeedFor(1, s, 1)); }
        Assert.Equal(2000, seeds.Count);
        Assert.NotEqual(StepRandom.SeedFor(1, 5, 0), StepRandom.SeedFor(2, 5, 0));
        Assert.All(seeds, s => Assert.True(s >= 0));
    }
}

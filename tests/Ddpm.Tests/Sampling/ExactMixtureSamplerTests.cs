using Ddpm.Diffusion;
using Ddpm.Sampling;
using static TorchSharp.torch;

namespace Ddpm.Tests.Sampling;

/// <summary>
/// The samplers driven by the exact eps of the 2-D mixture (<see cref="TrainedToy.ExactEps"/>, closed form), so that what
/// they produce can be held to the true law with bounds from sampling statistics alone: no trained network in the loop.
/// </summary>
public class ExactMixtureSamplerTests
{
    private const int N = 2000;

    /// <summary>Counts per nearest mode and the number of samples farther than 4 std from every mode.</summary>
    private static (int[] Counts, int Misses) Tally(Tensor samples)
    {
        var counts = new int[TrainedToy.Modes];
        int misses = 0;
        foreach (var p in TrainedToy.Points(samples))
        {
            double angle = Math.Atan2(p[1], p[0]);
            int k = (int)Math.Round(angle / (2 * Math.PI / TrainedToy.Modes));
            counts[(k + TrainedToy.Modes) % TrainedToy.Modes]++;
            if (TrainedToy.DistanceToNearestMode(p) >= 4 * TrainedToy.ModeStd) misses++;
        }
        return (counts, misses);
    }

    /// <summary>
    /// The bounds, for a sampler of the true law:
    /// modes: each count is Binomial(2000, 1/8), mean 250, sd 14.79; [194, 306] misses with probability 1.4e-4 per mode,
    /// 1.1e-3 for the 8 (exact binomial tails);
    /// on the modes: a sample is farther than 4 std from its mode with probability e^-8 = 3.4e-4 (Rayleigh radius), so
    /// 0.67 of 2000 are expected and more than 10 happen with probability 1.7e-10 (Poisson). The samplers' discretisation
    /// (1000 or 100 steps, or 20 solver steps) adds a little; 10 misses (0.5 %) allow that and nothing like a wrong
    /// variance or a misplaced step.
    /// </summary>
    private static void AssertTrueLaw(Tensor samples, string what)
    {
        var (counts, misses) = Tally(samples);
        string report = $"{what}: modes [{string.Join(", ", counts)}], {misses} of {N} off the modes";
        Assert.All(counts, c => Assert.True(c >= 194 && c <= 306, report));
        Assert.True(misses <= 10, report);
    }

    private static NoiseSchedule Schedule(int T) => T == 1000 ? NoiseSchedule.Linear(T) : NoiseSchedule.Linear(T, 1e-4 * 1000 / T, 0.02 * 1000 / T);

    [Theory]
    [InlineData(1000)]   // the paper's schedule (ToySamplerTests)
    [InlineData(100)]    // improved-diffusion's rescaling to T = 100 (ToyEndToEndTests)
    public void AncestralSamplerDrawsTheTrueLaw(int T)
    {
        using var scope = NewDisposeScope();
        using var diffusion = new GaussianDiffusion(Schedule(T), VarianceType.FixedSmall);
        using var eps = TrainedToy.ExactEps(diffusion.Schedule);
        using var r = TestSampling.Ancestral(diffusion, eps, new long[] { N, 2 }, new SampleOptions { Seed = 1, Threshold = X0Threshold.None });
        AssertTrueLaw(r.Samples, $"ancestral, T = {T}");
    }

    [Fact]
    public void DpmSolverAtTwentyStepsDrawsTheTrueLaw()
    {
        using var scope = NewDisposeScope();
        using var diffusion = new GaussianDiffusion(Schedule(1000), VarianceType.FixedSmall);
        using var eps = TrainedToy.ExactEps(diffusion.Schedule);
        var sampler = new DpmSolverSampler(new DpmSolverOptions { Steps = 20, Threshold = X0Threshold.None });
        using var r = sampler.Sample(diffusion, eps, new long[] { N, 2 }, SamplingRun.Seeded(2));
        AssertTrueLaw(r.Samples, "dpm-solver, 20 steps");
    }

    /// <summary>
    /// Deterministic DDIM maps the true law to N(0, I) along the probability-flow ODE, so encoding 500 true points gives
    /// 1000 code values that are N(0, 1) up to discretisation. Their sample std has sampling sd 1/sqrt(2 x 1000) = 0.0224
    /// and their mean 1/sqrt(1000) = 0.0316; the bands 1 +- 0.074 and 0 +- 0.1 are 3.3 and 3.2 of those. Discretisation
    /// shrinks the codes (exact eps: std 0.86 at 50 steps, 0.93 at 100, 0.98 at 200), so 200 steps are used.
    /// </summary>
    [Fact]
    public void DdimEncodingOfTheTrueLawGivesStandardNormalCodes()
    {
        using var scope = NewDisposeScope();
        using var diffusion = new GaussianDiffusion(Schedule(1000), VarianceType.FixedSmall);
        using var eps = TrainedToy.ExactEps(diffusion.Schedule);
        using var g = new Generator(7, CPU);
        var x0 = TrainedToy.Sample(500, g);
        var codes = DdimSampler.Encode(diffusion, eps, x0, TimestepSelection.EvenlySpaced(TrainedToy.T, 200));
        double std = codes.std().item<float>(), mean = codes.mean().item<float>();
        Assert.InRange(std, 1 - 0.074, 1 + 0.074);
        Assert.InRange(mean, -0.1, 0.1);
    }
}

using Ddpm.Diffusion;
using Ddpm.Sampling;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ddpm.Tests.Sampling;

/// <summary>The fast samplers against DDPM's 1000-step sampler on a trained 2-D toy model.</summary>
public class ToySamplerTests : IClassFixture<TrainedToy>
{
    private readonly TrainedToy _toy;
    private readonly ITestOutputHelper _out;

    public ToySamplerTests(TrainedToy toy, ITestOutputHelper output)
    {
        _toy = toy;
        _out = output;
    }

    /// <summary>Runs on one thread: a model this small is fastest so and leaves the other core alone.</summary>
    private static T OneThread<T>(Func<T> f)
    {
        int threads = get_num_threads();
        set_num_threads(1);
        try { return f(); }
        finally { set_num_threads(threads); }
    }

    private double[][] Draw(SamplerSettings settings, int n, long seed) => OneThread(() =>
    {
        using var r = Sampler.Sample(_toy.Diffusion, _toy.Model, new long[] { n, 2 }, settings,
            new SamplerOptions { Seed = seed, Threshold = X0Threshold.None });
        return TrainedToy.Points(r.Samples);
    });

    private sealed record Stats(double Near, double MeanDistance, double ToTruth, double ToDdpm);

    /// <summary>
    /// DPM-Solver++(2M) at 10 and 20 steps against DDPM at all 1000 steps, on 2000 samples each. Statistics: the
    /// fraction of samples within 4 std of a mode, the mean distance to the nearest mode, and the sliced
    /// 1-Wasserstein distance (64 directions) to a true sample and to the DDPM samples. The yardstick for "close" is
    /// the model's own error: DDPM-1000's distance to the true law. A solver whose distance to DDPM-1000 is below that
    /// adds less error than the network already has. DDIM at 10 steps is the first-order baseline it must beat.
    /// </summary>
    [Fact]
    public void DpmSolverAtTenToTwentyStepsIsCloseToDdpmAtAThousand()
    {
        const int N = 2000;
        using var g = new Generator(101, CPU);
        using var truth = TrainedToy.Sample(N, g);
        var truePoints = TrainedToy.Points(truth);
        var ddpm = Draw(new SamplerSettings(), N, 1);
        Stats Measure(double[][] p) => new(TrainedToy.FractionNearMode(p), p.Average(TrainedToy.DistanceToNearestMode),
            TrainedToy.SlicedWasserstein(p, truePoints), TrainedToy.SlicedWasserstein(p, ddpm));

        var reference = Measure(ddpm);
        var dpm10 = Measure(Draw(new SamplerSettings { Kind = SamplerKind.DpmSolver, Steps = 10 }, N, 2));
        var dpm20 = Measure(Draw(new SamplerSettings { Kind = SamplerKind.DpmSolver, Steps = 20 }, N, 2));
        var ddim10 = Measure(Draw(new SamplerSettings { Kind = SamplerKind.Ddim, Steps = 10 }, N, 2));
        string report = $"train {_toy.TrainSeconds:F1} s, loss {_toy.FinalLoss:F4}\n" +
                        $"ddpm-1000 {reference}\ndpm-solver-10 {dpm10}\ndpm-solver-20 {dpm20}\nddim-10 {ddim10}";
        _out.WriteLine(report);

        // The model learnt the mixture (true data: 99.97 % near a mode; N(0, I): about 12 %).
        Assert.True(reference.Near > 0.6, report);
        // 20 steps: closer to DDPM-1000 than DDPM-1000 is to the data, and the same statistics within a few percent.
        Assert.True(dpm20.ToDdpm < reference.ToTruth, report);
        Assert.True(dpm20.ToTruth < 1.2 * reference.ToTruth, report);
        Assert.True(Math.Abs(dpm20.Near - reference.Near) < 0.06, report);
        Assert.True(Math.Abs(dpm20.MeanDistance / reference.MeanDistance - 1) < 0.05, report);
        // 10 steps: a little looser, and well ahead of first-order DDIM at the same number of model calls.
        Assert.True(dpm10.ToDdpm < 1.25 * reference.ToTruth, report);
        Assert.True(dpm10.Near > reference.Near - 0.1, report);
        Assert.True(Math.Abs(dpm10.MeanDistance / reference.MeanDistance - 1) < 0.12, report);
        Assert.True(dpm10.ToDdpm < 0.75 * ddim10.ToDdpm, report);
    }

    /// <summary>
    /// Deterministic DDIM encodes data into noise and decodes it back. The round trip is exact only in the limit of
    /// small steps (encoding and decoding evaluate the model at opposite ends of each step), so its error must be
    /// small against the modes' std of 0.05 and must shrink about in proportion to the step size; the codes must look
    /// like N(0, I) noise.
    /// </summary>
    [Fact]
    public void DdimInversionThenDecodingReturnsTheData()
    {
        using var g = new Generator(7, CPU);
        using var x0 = TrainedToy.Sample(500, g);
        (double Error, double Std, double Mean) RoundTrip(int steps) => OneThread(() =>
        {
            var ts = TimestepSelection.EvenlySpaced(TrainedToy.T, steps);
            using var xT = DdimSampler.Encode(_toy.Diffusion, _toy.Model, x0, ts);
            using var again = DdimSampler.Encode(_toy.Diffusion, _toy.Model, x0, ts);
            Assert.True(xT.allclose(again, rtol: 0, atol: 0), "encoding is deterministic");
            using var back = DdimSampler.Decode(_toy.Diffusion, _toy.Model, xT, ts, 0.0, new SamplerOptions { Threshold = X0Threshold.None, Seed = 99 });
            return ((back.Samples - x0).abs().mean().item<float>(), xT.std().item<float>(), xT.mean().item<float>());
        });
        var r100 = RoundTrip(100);
        var r200 = RoundTrip(200);
        string report = $"100 steps: error {r100.Error:F5}, code std {r100.Std:F3}; 200 steps: error {r200.Error:F5}, code std {r200.Std:F3}, mean {r200.Mean:F3}";
        _out.WriteLine(report);
        Assert.True(r100.Error < 0.25 * TrainedToy.ModeStd, report);
        Assert.True(r200.Error < 0.15 * TrainedToy.ModeStd, report);
        Assert.True(r200.Error < 0.7 * r100.Error, report);
        Assert.InRange(r200.Std, 0.9, 1.1);
        Assert.InRange(r200.Mean, -0.1, 0.1);
    }
}

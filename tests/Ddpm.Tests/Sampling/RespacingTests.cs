using Ddpm.Diffusion;
using Ddpm.Sampling;
using Ddpm.Tests.Diffusion;
using static TorchSharp.torch;

namespace Ddpm.Tests.Sampling;

public class RespacingTests
{
    [Fact]
    public void EvenlySpacedKeepsBothEndsAndRounds()
    {
        Assert.Equal(new[] { 0, 111, 222, 333, 444, 555, 666, 777, 888, 999 }, TimestepSelection.EvenlySpaced(1000, 10));
        Assert.Equal(new[] { 0, 250, 500, 749, 999 }, TimestepSelection.EvenlySpaced(1000, 5)); // 749.25 rounds down
        Assert.Equal(Enumerable.Range(0, 12).ToArray(), TimestepSelection.EvenlySpaced(12, 12));
        Assert.Equal(new[] { 11 }, TimestepSelection.EvenlySpaced(12, 1));
        Assert.Equal(new[] { 0, 3999 }, TimestepSelection.EvenlySpaced(4000, 2));
        Assert.Throws<DdpmException>(() => TimestepSelection.EvenlySpaced(12, 13));
        Assert.Throws<DdpmException>(() => TimestepSelection.EvenlySpaced(12, 0));
    }

    [Fact]
    public void LogSnrSpacingIsEvenInLambdaAndDistinct()
    {
        var s = NoiseSchedule.Linear(1000);
        var ts = TimestepSelection.LogSnrSpaced(s, 20);
        Assert.Equal(20, ts.Length);
        Assert.Equal(0, ts[0]);
        Assert.Equal(999, ts[^1]);
        Assert.True(ts.Zip(ts.Skip(1)).All(p => p.First < p.Second));
        double l0 = TimestepSelection.HalfLogSnr(s.AlphasCumprod[0]), l1 = TimestepSelection.HalfLogSnr(s.AlphasCumprod[999]);
        for (int i = 0; i < 20; i++)
        {
            // Each pick's lambda is the nearest the discrete schedule has to the evenly spaced target.
            double target = l0 + (l1 - l0) * i / 19;
            double got = TimestepSelection.HalfLogSnr(s.AlphasCumprod[ts[i]]);
            int t = ts[i];
            foreach (int other in new[] { t - 1, t + 1 })
                if (other >= 0 && other < 1000)
                    Assert.True(Math.Abs(got - target) <= Math.Abs(TimestepSelection.HalfLogSnr(s.AlphasCumprod[other]) - target) + 1e-12);
        }
        // Asking for nearly every step still gives distinct steps (lambda moves fast near t = 0).
        var dense = TimestepSelection.LogSnrSpaced(s, 990);
        Assert.Equal(990, dense.Distinct().Count());
        Assert.True(dense.Zip(dense.Skip(1)).All(p => p.First < p.Second) && dense[0] == 0 && dense[^1] == 999);
        Assert.Equal(Enumerable.Range(0, 1000), TimestepSelection.LogSnrSpaced(s, 1000));
    }

    [Theory]
    [InlineData("0,5,12")]
    [InlineData("0,5,5")]
    [InlineData("-1,3")]
    [InlineData("0,x")]
    [InlineData("")]
    public void BadTimestepListsAreUserErrors(string list)
    {
        var e = Assert.Throws<DdpmException>(() => TimestepSelection.Parse(list, 12));
        Assert.Equal("timestep_list", e.Setting);
    }

    [Fact]
    public void ParsedListsAreSorted() =>
        Assert.Equal(new[] { 0, 4, 11 }, TimestepSelection.Parse(" 11, 0,4 ", 12));

    [Theory]
    [InlineData(ScheduleKind.Linear, 1000)]
    [InlineData(ScheduleKind.Cosine, 4000)]
    public void RespacedBetasKeepAlphaBarAtTheKeptSteps(ScheduleKind kind, int T)
    {
        var s = NoiseSchedule.Create(kind, T);
        // All steps: the original betas, bit for bit.
        Assert.Equal(s.Betas, RespacedDiffusion.RespacedBetas(s, Enumerable.Range(0, T).ToArray()));
        foreach (var kept in new[] { TimestepSelection.EvenlySpaced(T, 25), new[] { 3, 4, 100, T / 2, T - 1 }, new[] { T - 1 } })
        {
            var betas = RespacedDiffusion.RespacedBetas(s, kept);
            double prod = 1;
            for (int i = 0; i < kept.Length; i++)
            {
                prod *= 1 - betas[i];
                // 1 - beta' is exact to about 1e-16 absolute (beta' near 1 leaves few digits of a tiny 1 - beta').
                Assert.Equal(s.AlphasCumprod[kept[i]], prod, Math.Max(1e-12 * s.AlphasCumprod[kept[i]], 1e-15));
            }
            // The respaced schedule: alpha_bar'_i = alpha_bar_{s_i}, previous = alpha_bar_{s_{i-1}}, and 1 for the last step.
            var r = NoiseSchedule.FromBetas(betas);
            Assert.Equal(1.0, r.AlphasCumprodPrev[0]);
            for (int i = 1; i < kept.Length; i++)
                Assert.Equal(s.AlphasCumprod[kept[i - 1]], r.AlphasCumprodPrev[i], Math.Max(1e-12 * s.AlphasCumprod[kept[i - 1]], 1e-15));
            // The last step's posterior mean is x_0 itself (coef1 = 1, coef2 = 0).
            Assert.Equal(1.0, r.PosteriorMeanCoef1[0], 1e-12);
            Assert.Equal(0.0, r.PosteriorMeanCoef2[0]);
        }
    }

    [Fact]
    public void RespacedDiffusionKeepsTheVarianceTypeOnTheNewBetas()
    {
        using var d = new GaussianDiffusion(NoiseSchedule.Linear(100), VarianceType.FixedLarge);
        using var r = RespacedDiffusion.Create(d, new[] { 99, 0, 50 });
        Assert.Equal(new[] { 0, 50, 99 }, r.Timesteps);
        Assert.Equal(VarianceType.FixedLarge, r.Diffusion.VarianceType);
        var betas = RespacedDiffusion.RespacedBetas(d.Schedule, new[] { 0, 50, 99 });
        Assert.Equal(betas[1], r.Diffusion.ModelVariance[1]);
        Assert.Equal(betas[2], r.Diffusion.ModelVariance[2]);
    }

    [Fact]
    public void RespacingToAllStepsReproducesTheFullSamplerExactly()
    {
        using var d = new GaussianDiffusion(NoiseSchedule.Cosine(40), VarianceType.FixedLarge);
        using var model = new FuncModel((x, t) => x * 0.2f + t.to(ScalarType.Float32).view(-1, 1) * 0.01f);
        var shape = new long[] { 6, 3 };
        var options = new SampleOptions { Seed = 12, KeepEvery = 7 };
        using var full = TestSampling.Ancestral(d, model, shape, options);
        using var respaced = TestSampling.Ancestral(d, model, shape, Enumerable.Range(0, 40).Reverse(), options);
        Assert.Equal(TensorData.Floats(full.Samples), TensorData.Floats(respaced.Samples));
        Assert.Equal(full.Trajectory.Select(f => f.T), respaced.Trajectory.Select(f => f.T));
        for (int i = 0; i < full.Trajectory.Count; i++)
            Assert.Equal(TensorData.Floats(full.Trajectory[i].Xt), TensorData.Floats(respaced.Trajectory[i].Xt));
    }

    /// <summary>
    /// The respaced ancestral sampler step by step against a hand-rolled loop in float64: the model sees the original
    /// timesteps, each step's previous timestep comes from the list, the last step goes to alpha_bar_prev = 1, and the
    /// variance is fixedsmall on the respaced betas.
    /// </summary>
    [Fact]
    public void RespacedAncestralStepsFollowThePosteriorOfTheKeptSteps()
    {
        var s = NoiseSchedule.Linear(100, 1e-3, 0.1);
        using var d = new GaussianDiffusion(s, VarianceType.FixedSmall);
        var seen = new List<long>();
        using var model = new FuncModel((x, t) =>
        {
            seen.Add(t[0].item<long>());
            return x * 0.5f;
        });
        var kept = new[] { 4, 30, 31, 77, 99 };
        var shape = new long[] { 3, 2 };
        using var r = TestSampling.Ancestral(d, model, shape, kept, new SampleOptions { Seed = 6, Threshold = X0Threshold.None });
        Assert.Equal(new long[] { 99, 77, 31, 30, 4 }, seen);

        using var g = new Generator(6, CPU);
        var x = randn(shape, generator: g).to(ScalarType.Float64);
        for (int i = kept.Length - 1; i >= 0; i--)
        {
            double a = s.AlphasCumprod[kept[i]], aPrev = i > 0 ? s.AlphasCumprod[kept[i - 1]] : 1.0, beta = 1 - a / aPrev;
            var noise = randn(shape, generator: g).to(ScalarType.Float64);
            var x0 = (x - Math.Sqrt(1 - a) * (x * 0.5)) / Math.Sqrt(a);
            var mean = beta * Math.Sqrt(aPrev) / (1 - a) * x0 + (1 - aPrev) * Math.Sqrt(1 - beta) / (1 - a) * x;
            double variance = beta * (1 - aPrev) / (1 - a);
            x = i > 0 ? mean + Math.Sqrt(variance) * noise : mean;
        }
        Assert.True(r.Samples.to(ScalarType.Float64).allclose(x, rtol: 1e-4, atol: 1e-5));
    }

    [Fact]
    public void TimestepMappedModelMapsAndLeavesTheInnerModelAlone()
    {
        using var inner = new FuncModel((x, t) => x + t.to(ScalarType.Float32).view(-1, 1));
        using (var mapped = new TimestepMappedModel(inner, new[] { 5, 50, 500 }))
        {
            using var y = mapped.call(zeros(3, 1), tensor(new long[] { 2, 0, 1 }));
            Assert.Equal(new float[] { 500, 5, 50 }, TensorData.Floats(y));
            inner.train();
            mapped.eval();
            Assert.False(inner.training);
        }
        using var after = inner.call(zeros(1, 1), tensor(new long[] { 7 }));
        Assert.Equal(new float[] { 7 }, TensorData.Floats(after));
    }
}

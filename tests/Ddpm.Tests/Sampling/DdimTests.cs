using Ddpm.Diffusion;
using Ddpm.Sampling;
using Ddpm.Tests.Diffusion;
using static TorchSharp.torch;

namespace Ddpm.Tests.Sampling;

public class DdimTests
{
    private static FuncModel Shrink() => new((x, _) => x * 0.3f);

    /// <summary>DDIM eq. 16 with eta = 1 is DDPM's posterior variance beta~_t = beta_t (1 - ab_{t-1}) / (1 - ab_t).</summary>
    [Theory]
    [InlineData(ScheduleKind.Linear, 1000)]
    [InlineData(ScheduleKind.Cosine, 4000)]
    public void SigmaWithEtaOneIsThePosteriorVariance(ScheduleKind kind, int T)
    {
        var s = NoiseSchedule.Create(kind, T);
        for (int t = 1; t < T; t++)
        {
            double sigma = DdimSampler.Sigma(s.AlphasCumprod[t], s.AlphasCumprod[t - 1], 1.0);
            double expected = s.Betas[t] * (1 - s.AlphasCumprod[t - 1]) / (1 - s.AlphasCumprod[t]);
            Assert.Equal(expected, sigma * sigma, expected * 1e-9);
            Assert.Equal(0.5 * sigma, DdimSampler.Sigma(s.AlphasCumprod[t], s.AlphasCumprod[t - 1], 0.5), 1e-15);
        }
        Assert.Equal(0.0, DdimSampler.Sigma(s.AlphasCumprod[0], 1.0, 1.0));
        Assert.Equal(0.0, DdimSampler.Sigma(s.AlphasCumprod[5], s.AlphasCumprod[2], 0.0));
    }

    /// <summary>
    /// DDIM with eta = 1 is the ancestral sampler with fixedsmall variance: fed the same noise (same seed, same order of
    /// draws), the two produce the same trajectory, over all steps and over a respaced subset, with clipping.
    /// </summary>
    [Fact]
    public void EtaOneMatchesTheAncestralSamplerStepByStep()
    {
        var s = NoiseSchedule.Linear(100, 1e-3, 0.2);
        using var d = new GaussianDiffusion(s, VarianceType.FixedSmall);
        using var model = Shrink();
        var shape = new long[] { 64, 3 };
        var options = new SampleOptions { Seed = 21, KeepEvery = 10 };
        using var ancestral = TestSampling.Ancestral(d, model, shape, options);
        using var ddim = TestSampling.Ddim(d, model, shape, Enumerable.Range(0, 100), 1.0, options);
        Assert.Equal(ancestral.Trajectory.Select(f => f.T), ddim.Trajectory.Select(f => f.T));
        for (int i = 0; i < ancestral.Trajectory.Count; i++)
            Assert.True(ancestral.Trajectory[i].Xt.allclose(ddim.Trajectory[i].Xt, rtol: 1e-4, atol: 1e-4), $"frame {ancestral.Trajectory[i].T}");
        // The noise really matters: its variance is the posterior variance, not zero.
        using var deterministic = TestSampling.Ddim(d, model, shape, Enumerable.Range(0, 100), 0.0, options);
        Assert.False(deterministic.Samples.allclose(ddim.Samples, rtol: 1e-2, atol: 1e-2));

        var subset = new[] { 0, 7, 30, 31, 60, 99 };
        using var respaced = TestSampling.Ancestral(d, model, shape, subset, options);
        using var ddimSubset = TestSampling.Ddim(d, model, shape, subset, 1.0, options);
        Assert.True(respaced.Samples.allclose(ddimSubset.Samples, rtol: 1e-4, atol: 1e-4));
    }

    /// <summary>
    /// With eta = 0 the only randomness is x_T: sampling with a seed equals decoding that seed's noise; decoding
    /// ignores the seed; the step is eq. 12 with sigma = 0, checked by hand on the zero model (eps = 0, x0 = x_t / sqrt(ab)).
    /// </summary>
    [Fact]
    public void EtaZeroIsADeterministicFunctionOfTheNoise()
    {
        var s = NoiseSchedule.Linear(50);
        using var d = new GaussianDiffusion(s);
        using var model = Shrink();
        var shape = new long[] { 8, 2 };
        var ts = new[] { 0, 10, 25, 49 };
        var noThreshold = new SampleOptions { Seed = 5, Threshold = X0Threshold.None };
        using var sampled = TestSampling.Ddim(d, model, shape, ts, 0.0, noThreshold);
        using var xT = Interpolation.SeedNoise(shape, 5);
        using var decoded = TestSampling.Decode(d, model, xT, ts, 0.0, new SampleOptions { Seed = 77, Threshold = X0Threshold.None });
        Assert.Equal(TensorData.Floats(sampled.Samples), TensorData.Floats(decoded.Samples));

        // Zero model: eps = 0, so x_prev = sqrt(ab_prev) x_t / sqrt(ab_t) and the final x_0 = x_T / sqrt(ab_{49}).
        using var zero = FuncModel.Zero();
        using var z = TestSampling.Decode(d, zero, xT, ts, 0.0, noThreshold);
        using var expected = xT.to(ScalarType.Float64) / Math.Sqrt(s.AlphasCumprod[49]);
        Assert.True(z.Samples.to(ScalarType.Float64).allclose(expected, rtol: 1e-5, atol: 1e-6));
    }

    [Theory]
    [InlineData(-0.1)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void EtaOutsideZeroToOneIsAUserError(double eta)
    {
        using var d = new GaussianDiffusion(NoiseSchedule.Linear(10));
        using var model = Shrink();
        var e = Assert.Throws<DdpmException>(() => TestSampling.Ddim(d, model, new long[] { 1, 2 }, new[] { 0, 9 }, eta, new SampleOptions()));
        Assert.Equal("eta", e.Setting);
        Assert.DoesNotContain("--", e.Message);
    }

    /// <summary>Inversion of the zero model is the exact inverse: x_T = sqrt(ab_last) x_0 at every step count.</summary>
    [Fact]
    public void EncodeOfTheZeroModelScalesBySqrtAlphaBar()
    {
        var s = NoiseSchedule.Cosine(30);
        using var d = new GaussianDiffusion(s);
        using var zero = FuncModel.Zero();
        using var g = new Generator(3, CPU);
        using var x0 = randn(new long[] { 5, 2 }, generator: g);
        using var xT = DdimSampler.Encode(d, zero, x0, new[] { 0, 3, 17, 29 });
        Assert.True(xT.allclose(x0 * Math.Sqrt(s.AlphasCumprod[29]), rtol: 1e-5, atol: 1e-6));
    }
}

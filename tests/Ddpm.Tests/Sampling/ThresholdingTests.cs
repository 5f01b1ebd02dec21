using Ddpm.Diffusion;
using Ddpm.Sampling;
using Ddpm.Tests.Diffusion;
using static TorchSharp.torch;

namespace Ddpm.Tests.Sampling;

public class ThresholdingTests
{
    /// <summary>
    /// Hand-computed: sample 0 holds |x| = 0, 0.01, ..., 2.00 (201 values, signs alternating), whose 0.995 quantile
    /// (linear interpolation at position 0.995 * 200 = 199) is 1.99; sample 1 stays inside [-0.5, 0.5], so s = 1 and
    /// nothing changes; sample 2 is sample 0 times 3 (quantile 5.97), capped by max = 4.
    /// </summary>
    [Fact]
    public void DynamicThresholdingUsesThePerSampleQuantile()
    {
        var a = Enumerable.Range(0, 201).Select(i => (i % 2 == 0 ? 1f : -1f) * i / 100f).ToArray();
        var b = Enumerable.Range(0, 201).Select(i => (float)Math.Sin(i) * 0.5f).ToArray();
        var c = a.Select(v => v * 3f).ToArray();
        using var x = tensor(a.Concat(b).Concat(c).ToArray()).view(3, 1, 201);
        using var y = Thresholding.Dynamic(x, 0.995, 4.0);
        var got = TensorData.Floats(y);
        for (int i = 0; i < 201; i++)
        {
            Assert.Equal(Math.Clamp(a[i], -1.99f, 1.99f) / 1.99f, got[i], 1e-6f);
            Assert.Equal(b[i], got[201 + i], 0f);
            Assert.Equal(Math.Clamp(c[i], -4f, 4f) / 4f, got[402 + i], 1e-6f);
        }
        // Without a cap sample 2 is divided by its own quantile, 5.97.
        using var uncapped = Thresholding.Dynamic(x, 0.995, double.PositiveInfinity);
        Assert.Equal(Math.Clamp(c[200], -5.97f, 5.97f) / 5.97f, TensorData.Floats(uncapped)[402 + 200], 1e-6f);
        Assert.Equal(-3f * 1.99f / 5.97f, TensorData.Floats(uncapped)[402 + 199], 1e-5f);
    }

    [Fact]
    public void ClipAndNone()
    {
        using var x = tensor(new[] { -3f, -0.5f, 0.25f, 2f }).view(2, 2);
        using var clip = Thresholding.Apply(x, new AncestralOptions { Threshold = X0Threshold.Clip });
        using var none = Thresholding.Apply(x, new AncestralOptions { Threshold = X0Threshold.None });
        Assert.Equal(new[] { -1f, -0.5f, 0.25f, 1f }, TensorData.Floats(clip));
        Assert.Equal(TensorData.Floats(x), TensorData.Floats(none));
        Assert.Equal(X0Threshold.Clip, new DdimOptions().Threshold);
    }

    /// <summary>
    /// A model whose x_0 predictions go far out of range: with dynamic thresholding every sampler's last prediction
    /// (its final sample) lies in [-1, 1] with at least one value per sample at +-1 (the quantile was above 1), and it
    /// differs from plain clipping.
    /// </summary>
    [Theory]
    [MemberData(nameof(SamplerContractTests.Names), MemberType = typeof(SamplerContractTests))]
    public void EverySamplerAppliesDynamicThresholding(string name)
    {
        using var d = new GaussianDiffusion(NoiseSchedule.Linear(50));
        using var model = new FuncModel((x, _) => -2f * x); // x_0 = (1 + 2 sqrt(1 - ab)) x / sqrt(ab): large
        var shape = new long[] { 4, 300 };
        var dynamic = SamplerRegistry.Create(name, o => o with { Steps = 10, Threshold = X0Threshold.Dynamic });
        var clipping = dynamic.With(dynamic.Options with { Threshold = X0Threshold.Clip });
        using var dyn = dynamic.Sample(d, model, shape, SamplingRun.Seeded(2) with { KeepEvery = 100 });
        using var clip = clipping.Sample(d, model, shape, SamplingRun.Seeded(2));
        Assert.True(dyn.Samples.abs().max().item<float>() <= 1f + 1e-6f);
        using var rowMax = dyn.Samples.abs().amax(new long[] { 1 });
        Assert.All(TensorData.Floats(rowMax), m => Assert.Equal(1f, m, 1e-5f));
        Assert.Equal(TensorData.Floats(dyn.Samples), TensorData.Floats(dyn.Trajectory[^1].PredX0));
        Assert.False(dyn.Samples.allclose(clip.Samples, rtol: 1e-3, atol: 1e-3));
    }

    /// <summary>After thresholding, eps is re-derived so that x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps still holds.</summary>
    [Fact]
    public void EpsIsRederivedFromTheThresholdedStart()
    {
        var s = NoiseSchedule.Linear(100);
        using var d = new GaussianDiffusion(s);
        using var model = new FuncModel((x, _) => -x);
        using var xt = linspace(-3, 3, 12).view(2, 6);
        var (eps, x0) = ModelPrediction.EpsAndX0(d, model, xt, 60, new AncestralOptions { Threshold = X0Threshold.Clip });
        using (eps)
        using (x0)
        {
            double ab = s.AlphasCumprod[60];
            Assert.True(x0.abs().max().item<float>() <= 1f);
            using var back = Math.Sqrt(ab) * x0 + Math.Sqrt(1 - ab) * eps;
            Assert.True(back.allclose(xt, rtol: 1e-5, atol: 1e-5));
        }
    }
}

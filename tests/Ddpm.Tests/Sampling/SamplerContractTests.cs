using Ddpm.Diffusion;
using Ddpm.Sampling;
using Ddpm.Tests.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Sampling;

/// <summary>What every registered sampler must do, run over the registry.</summary>
public class SamplerContractTests
{
    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (var name in SamplerRegistry.Names) data.Add(name);
        return data;
    }

    private static ISampler Few(string name) =>
        SamplerRegistry.Create(name, o => o with { Steps = Math.Min(8, o.Steps ?? 8) });

    [Theory]
    [MemberData(nameof(Names))]
    public void SameSeedSameSamplesDifferentSeedDifferentSamplesAndTheRequestedShape(string name)
    {
        using var d = new GaussianDiffusion(NoiseSchedule.Linear(40));
        using var model = new FuncModel((x, _) => 0.3f * x);
        var sampler = Few(name);
        var shape = new long[] { 3, 2, 4, 4 };
        manual_seed(1);
        using var a = sampler.Sample(d, model, shape, SamplingRun.Seeded(5));
        manual_seed(2); // the global RNG state must not matter
        using var b = sampler.Sample(d, model, shape, SamplingRun.Seeded(5));
        using var c = sampler.Sample(d, model, shape, SamplingRun.Seeded(6));
        Assert.Equal(shape, a.Samples.shape);
        Assert.Equal(ScalarType.Float32, a.Samples.dtype);
        Assert.Equal(DeviceType.CPU, a.Samples.device_type);
        Assert.Equal(TensorData.Floats(a.Samples), TensorData.Floats(b.Samples));
        Assert.NotEqual(TensorData.Floats(a.Samples), TensorData.Floats(c.Samples));
        Assert.Equal(sampler.Timesteps(d.Schedule).Length, model.Calls / 3);
    }

    /// <summary>
    /// A given x_T is honoured: the same x_T and noise give the same samples, and x_T = the seed's first draw with the
    /// rest of that generator's stream as the noise reproduces the seeded run bit for bit (the documented draw order).
    /// </summary>
    [Theory]
    [MemberData(nameof(Names))]
    public void StartsFromAGivenNoiseInTheDocumentedDrawOrder(string name)
    {
        using var d = new GaussianDiffusion(NoiseSchedule.Cosine(40));
        using var model = new FuncModel((x, _) => 0.3f * x);
        var sampler = Few(name);
        var shape = new long[] { 2, 6 };
        using var seeded = sampler.Sample(d, model, shape, SamplingRun.Seeded(11));

        using var generator = new Generator(11, CPU);
        using var xT = randn(shape, generator: generator);
        using var fromStart = sampler.Sample(d, model, shape, new SamplingRun { Start = xT, Noise = NoiseSource.From(generator) });
        Assert.Equal(TensorData.Floats(seeded.Samples), TensorData.Floats(fromStart.Samples));

        // A stream of noises replayed: the same x_T and the same stream give the same samples.
        var stream = new List<Tensor>();
        Tensor Next(long[] s)
        {
            using var g = new Generator((ulong)(100 + stream.Count), CPU);
            var z = randn(s, generator: g);
            stream.Add(z.clone().DetachFromDisposeScope());
            return z;
        }
        using var other = Interpolation.SeedNoise(shape, 12);
        using var once = sampler.Sample(d, model, shape, new SamplingRun { Start = other, Noise = NoiseSource.From(Next) });
        int draws = stream.Count;
        int replayed = 0;
        using var again = sampler.Sample(d, model, shape, new SamplingRun { Start = other, Noise = NoiseSource.From(s => stream[replayed++].clone()) });
        Assert.Equal(TensorData.Floats(once.Samples), TensorData.Floats(again.Samples));
        Assert.Equal(draws, replayed);
        Assert.NotEqual(TensorData.Floats(seeded.Samples), TensorData.Floats(once.Samples));
        foreach (var z in stream) z.Dispose();
    }

    /// <summary>
    /// Data ~ N(mu, s^2) with the exact optimal eps-model in closed form: every sampler at its default step count draws
    /// samples with the data's mean and standard deviation.
    /// </summary>
    [Theory]
    [MemberData(nameof(Names))]
    public void DrawsTheAnalyticGaussian(string name)
    {
        var s = NoiseSchedule.Cosine(200); // alpha_bar_{T-1} ~ 0, so that x_T ~ N(0, I) is the right prior
        using var d = new GaussianDiffusion(s, VarianceType.FixedSmall);
        var data = new GaussianData(s, -0.3, 0.4);
        using var model = data.Model();
        var sampler = SamplerRegistry.Create(name, o => o with { Threshold = X0Threshold.None });
        using var r = sampler.Sample(d, model, new long[] { 4000, 1 }, SamplingRun.Seeded(3));
        double mean = r.Samples.mean().item<float>(), std = r.Samples.std().item<float>();
        // 4000 draws: standard errors 0.4 / sqrt(4000) = 0.006 (mean) and 0.0045 (std); x_T's own sample spread adds to
        // the deterministic samplers' error.
        Assert.True(Math.Abs(mean + 0.3) < 0.025, $"{sampler.Describe(s)}: mean {mean}");
        Assert.True(Math.Abs(std - 0.4) < 0.025, $"{sampler.Describe(s)}: std {std}");
    }

    /// <summary>
    /// The default sampler is Algorithm 2 written out: x_T from a CPU generator seeded with the seed, then for
    /// t = T-1..0 one draw z and x_{t-1} = PSample(x_t, t, z) with x_0 clipped. Bit for bit, so the default grids stay
    /// what they were.
    /// </summary>
    [Fact]
    public void TheDefaultSamplerIsAlgorithmTwoBitForBit()
    {
        using var d = new GaussianDiffusion(NoiseSchedule.Linear(25));
        using var model = new FuncModel((x, t) => 0.7f * x - 0.01f * t.to(ScalarType.Float32).view(-1, 1, 1, 1));
        var shape = new long[] { 2, 1, 3, 3 };
        using var r = SamplerRegistry.Create("ddpm").Sample(d, model, shape, SamplingRun.Seeded(42));

        using var scope = NewDisposeScope();
        using var generator = new Generator(42, CPU);
        var x = randn(shape, dtype: ScalarType.Float32, generator: generator);
        using (no_grad())
            for (int t = 24; t >= 0; t--)
            {
                var z = randn(shape, dtype: ScalarType.Float32, generator: generator);
                x = d.PSample(model, x, full(new long[] { 2 }, (long)t, dtype: ScalarType.Int64), z, clipDenoised: true).Sample;
            }
        Assert.Equal(TensorData.Floats(x), TensorData.Floats(r.Samples));
    }

    /// <summary>A user's sampler registered by name is created by name and runs through the shared loop.</summary>
    [Fact]
    public void UsersRegisterTheirOwnSamplers()
    {
        string name = $"test-x0-{Guid.NewGuid():N}";
        SamplerRegistry.Register(name, "returns the first prediction of x_0", () => new OneShot(new AncestralOptions { Steps = 1 }));
        Assert.True(SamplerRegistry.IsRegistered(name.ToUpperInvariant()));
        Assert.Contains(name, SamplerRegistry.Names);
        Assert.Throws<DdpmException>(() => SamplerRegistry.Register(name, "again", () => new OneShot(new AncestralOptions())));
        Assert.Throws<DdpmException>(() => SamplerRegistry.Register("DDIM", "taken", () => new OneShot(new AncestralOptions())));

        var s = NoiseSchedule.Linear(30);
        using var d = new GaussianDiffusion(s);
        using var zero = FuncModel.Zero();
        using var xT = Interpolation.SeedNoise(new long[] { 2, 3 }, 1);
        using var r = SamplerRegistry.Create(name).Sample(d, zero, xT.shape, new SamplingRun { Start = xT });
        // eps = 0: x_0 = x_T / sqrt(alpha_bar_{T-1}).
        var expected = TensorData.Floats(xT).Select(v => (float)(v / Math.Sqrt(s.AlphasCumprod[29]))).ToArray();
        Assert.Equal(expected, TensorData.Floats(r.Samples), new FloatTolerance(1e-4f));
    }

    private sealed class OneShot(AncestralOptions options) : ISampler<AncestralOptions>
    {
        public string Name => "one-shot";
        public AncestralOptions Options => options;
        SamplerOptions ISampler.Options => options;
        public ISampler With(SamplerOptions o) => new OneShot((AncestralOptions)o);
        public int[] Timesteps(NoiseSchedule schedule) => options.ResolveTimesteps(schedule, 1, TimestepSpacing.Even);
        public string Describe(NoiseSchedule schedule) => Name;
        public ISamplerRun Begin(GaussianDiffusion diffusion, nn.Module<Tensor, Tensor, Tensor> model, int[] visited) => new Run(diffusion, model, visited);

        private sealed class Run(GaussianDiffusion diffusion, nn.Module<Tensor, Tensor, Tensor> model, int[] visited) : ISamplerRun
        {
            public SamplerStep Step(int k, Tensor x, Func<Tensor> noise)
            {
                var t = full(new[] { x.shape[0] }, (long)visited[k], dtype: ScalarType.Int64);
                var (_, x0) = diffusion.PredictEpsAndX0(model, x, t, clipDenoised: false);
                return new SamplerStep(x0, x0);
            }

            public void Dispose() { }
        }
    }
}

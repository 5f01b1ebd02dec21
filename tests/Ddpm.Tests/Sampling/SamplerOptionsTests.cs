using Ddpm.Diffusion;
using Ddpm.Sampling;
using Ddpm.Tests.Diffusion;
using static TorchSharp.torch;

namespace Ddpm.Tests.Sampling;

public class SamplerOptionsTests
{
    [Fact]
    public void DefaultsPerSampler()
    {
        var s = NoiseSchedule.Linear(1000);
        Assert.Equal(Enumerable.Range(0, 1000).Reverse(), new AncestralSampler().Timesteps(s));
        Assert.Equal(TimestepSelection.EvenlySpaced(1000, 50).Reverse(), new DdimSampler().Timesteps(s));
        Assert.Equal(TimestepSelection.LogSnrSpaced(s, 20).Reverse(), new DpmSolverSampler().Timesteps(s));
        Assert.Equal(TimestepSelection.EvenlySpaced(1000, 20).Reverse(),
            new DpmSolverSampler(new DpmSolverOptions { Spacing = TimestepSpacing.Even }).Timesteps(s));
        Assert.Equal(new[] { 9, 5, 0 }, new DdimSampler(new DdimOptions { Timesteps = new[] { 9, 0, 5 } }).Timesteps(s));
        // Fewer than the default steps in the schedule: all of them.
        Assert.Equal(12, new DpmSolverSampler().Timesteps(NoiseSchedule.Linear(12)).Length);
        Assert.Equal("ddim, 50 of 1000 steps (even), threshold clip, eta 0.5", new DdimSampler(new DdimOptions { Eta = 0.5 }).Describe(s));
        Assert.Equal("dpm-solver", SamplerRegistry.Resolve("DPM-Solver++"));
        Assert.Equal("ddim", SamplerRegistry.Resolve(" ddim "));
        Assert.IsType<DdimSampler>(SamplerRegistry.Create("ddim"));
        // The shared options keep the sampler's own record type through `with`.
        var ddim = SamplerRegistry.Create("ddim", o => o with { Steps = 7 });
        Assert.Equal(new DdimOptions { Steps = 7 }, ddim.Options);
        Assert.Throws<DdpmException>(() => ddim.With(new DpmSolverOptions()));
    }

    public static TheoryData<string, int?, string?, double> Impossible => new()
    {
        { "ddpm", 1001, null, 0.0 },
        { "ddim", 0, null, 0.0 },
        { "ddim", null, null, -0.5 },
        { "ddim", null, null, 1.5 },
        { "ddim", 10, "0,5", 0.0 },
        { "ddim", null, "0,1000", 0.0 },
        { "dpm-solver", null, "3,3", 0.0 },
    };

    [Theory]
    [MemberData(nameof(Impossible))]
    public void ImpossibleSettingsAreOneLineErrorsNamingTheSetting(string name, int? steps, string? list, double eta)
    {
        var sampler = SamplerRegistry.Create(name, o => o with { Steps = steps, Timesteps = list?.Split(',').Select(int.Parse).ToArray() });
        if (sampler.Options is DdimOptions d) sampler = sampler.With(d with { Eta = eta });
        var e = Assert.Throws<DdpmException>(() => sampler.Timesteps(NoiseSchedule.Linear(1000)));
        Assert.DoesNotContain('\n', e.Message);
        Assert.DoesNotContain("--", e.Message); // the library names settings, not flags
        Assert.Throws<DdpmException>(() => SamplerRegistry.Resolve("euler"));
        Assert.Throws<DdpmException>(() => SamplerOptions.ParseSpacing("cosine"));
    }

    /// <summary>diffusers' spacings for T = 1000 and 10 steps, computed by hand from their definitions.</summary>
    [Fact]
    public void DiffusersSpacingsForAThousandStepsAndTen()
    {
        // DDIM: linspace(0, 999, 10) = 111 i exactly; leading 1000 div 10 = 100; trailing round(1000 - 100 i) - 1.
        Assert.Equal(new[] { 0, 111, 222, 333, 444, 555, 666, 777, 888, 999 }, TimestepSelection.Linspace(1000, 10));
        Assert.Equal(new[] { 0, 100, 200, 300, 400, 500, 600, 700, 800, 900 }, TimestepSelection.Leading(1000, 10));
        Assert.Equal(new[] { 99, 199, 299, 399, 499, 599, 699, 799, 899, 999 }, TimestepSelection.Trailing(1000, 10));
        // DPM-Solver: linspace(0, 999, 11) = 99.9 i rounded half to even (499.5 -> 500), 0 dropped;
        // leading 1000 div 11 = 90, 0 dropped; trailing as DDIM's.
        Assert.Equal(new[] { 100, 200, 300, 400, 500, 599, 699, 799, 899, 999 }, TimestepSelection.Linspace(1000, 10, endsAtSigmaZero: true));
        Assert.Equal(new[] { 90, 180, 270, 360, 450, 540, 630, 720, 810, 900 }, TimestepSelection.Leading(1000, 10, endsAtSigmaZero: true));
        // Through the samplers: descending, and each sampler takes its own scheduler's variant.
        var s = NoiseSchedule.Linear(1000);
        Assert.Equal(new[] { 900, 800, 700, 600, 500, 400, 300, 200, 100, 0 },
            new DdimSampler(new DdimOptions { Steps = 10, Spacing = TimestepSpacing.Leading }).Timesteps(s));
        Assert.Equal(new[] { 999, 899, 799, 699, 599, 500, 400, 300, 200, 100 },
            new DpmSolverSampler(new DpmSolverOptions { Steps = 10, Spacing = TimestepSpacing.Linspace }).Timesteps(s));
        // T / n not whole: 1000 / 3 -> round(1000, 666.67, 333.33) - 1.
        Assert.Equal(new[] { 332, 666, 999 }, TimestepSelection.Trailing(1000, 3));
    }

    /// <summary>Karras sigmas (rho = 7): each pick's sigma is the nearest the discrete schedule has to the target's.</summary>
    [Fact]
    public void KarrasSpacingPicksTheNearestSigmas()
    {
        var s = NoiseSchedule.Linear(1000);
        var picks = TimestepSelection.KarrasSpaced(s, 10);
        Assert.Equal(10, picks.Distinct().Count());
        Assert.Equal(0, picks[0]);
        Assert.Equal(999, picks[^1]);
        double Sigma(int t) => Math.Sqrt((1 - s.AlphasCumprod[t]) / s.AlphasCumprod[t]);
        double min = Math.Pow(Sigma(0), 1 / 7.0), max = Math.Pow(Sigma(999), 1 / 7.0);
        for (int i = 1; i < 9; i++)
        {
            double target = Math.Log(Math.Pow(min + i / 9.0 * (max - min), 7));
            int t = picks[i];
            string why = $"pick {i}: t = {t}, target {target}, log sigma {Math.Log(Sigma(t - 1))} {Math.Log(Sigma(t))} {Math.Log(Sigma(t + 1))}; picks {string.Join(",", picks)}";
            Assert.True(Math.Abs(Math.Log(Sigma(t)) - target) <= Math.Abs(Math.Log(Sigma(t - 1)) - target), why);
            Assert.True(Math.Abs(Math.Log(Sigma(t)) - target) <= Math.Abs(Math.Log(Sigma(t + 1)) - target), why);
        }
    }

    /// <summary>
    /// The zero eps-model makes DDIM's x_0 = x_t / sqrt(ab_t) and each step x_prev = sqrt(ab_prev) x_0, so the sample is
    /// x_T sqrt(ab_final) / sqrt(ab_{tau_K}): ab_final = 1 by default, alpha_bar_0 with set_alpha_to_one = False.
    /// </summary>
    [Fact]
    public void DdimEndsAtTheChosenFinalAlphaBar()
    {
        var s = NoiseSchedule.Linear(100);
        using var d = new GaussianDiffusion(s);
        using var zero = FuncModel.Zero();
        var shape = new long[] { 3, 4 };
        using var xT = Interpolation.SeedNoise(shape, 4);
        foreach (var (final, abFinal) in new[] { (DdimFinalStep.One, 1.0), (DdimFinalStep.AlphaBarZero, s.AlphasCumprod[0]) })
        {
            var ddim = new DdimSampler(new DdimOptions { Timesteps = new[] { 0, 40, 99 }, FinalStep = final, Threshold = X0Threshold.None });
            using var r = ddim.Sample(d, zero, shape, new SamplingRun { Start = xT });
            double scale = Math.Sqrt(abFinal) / Math.Sqrt(s.AlphasCumprod[99]);
            var expected = TensorData.Floats(xT).Select(v => (float)(v * scale)).ToArray();
            Assert.Equal(expected, TensorData.Floats(r.Samples), new FloatTolerance(2e-5f));
        }
    }

    /// <summary>
    /// One DDIM step from t = 50 to alpha_bar_0 with clipping, for a model whose eps is constant 0.3: the re-derived eps
    /// (default) is (x_t - sqrt(ab) clip(x_0)) / sqrt(1 - ab); the raw one is 0.3. Expectations in float64.
    /// </summary>
    [Fact]
    public void DdimCanKeepTheModelsRawEpsWhenClipping()
    {
        var s = NoiseSchedule.Linear(100);
        using var d = new GaussianDiffusion(s);
        using var model = new FuncModel((x, _) => full_like(x, 0.3f));
        using var xT = tensor(new[] { 3.0f, -2.5f, 0.1f, 0.4f }).view(1, 4);
        double ab = s.AlphasCumprod[50], abPrev = s.AlphasCumprod[0];
        foreach (bool rederive in new[] { true, false })
        {
            var ddim = new DdimSampler(new DdimOptions { Timesteps = new[] { 50 }, FinalStep = DdimFinalStep.AlphaBarZero, EpsFromThresholdedX0 = rederive });
            using var r = ddim.Sample(d, model, xT.shape, new SamplingRun { Start = xT });
            var got = TensorData.Floats(r.Samples);
            var x = TensorData.Floats(xT);
            for (int i = 0; i < x.Length; i++)
            {
                double x0 = Math.Clamp((x[i] - Math.Sqrt(1 - ab) * 0.3) / Math.Sqrt(ab), -1, 1);
                double eps = rederive ? (x[i] - Math.Sqrt(ab) * x0) / Math.Sqrt(1 - ab) : 0.3;
                Assert.Equal(Math.Sqrt(abPrev) * x0 + Math.Sqrt(1 - abPrev) * eps, got[i], 1e-5);
            }
        }
    }

    /// <summary>
    /// DPM-Solver++ from one timestep: to sigma = 0 the sample is the predicted x_0; to sigma_min it is the first-order
    /// update x = (sigma_0 / sigma_t) x_t - alpha_0 (e^{-h} - 1) x_0 with h = lambda_0 - lambda_t (float64 by hand).
    /// </summary>
    [Fact]
    public void DpmSolverFinalStepGoesToZeroOrToSigmaMin()
    {
        var s = NoiseSchedule.Linear(100);
        using var d = new GaussianDiffusion(s);
        using var model = new FuncModel((x, _) => 0.5f * x);
        using var xT = Interpolation.SeedNoise(new long[] { 2, 3 }, 6);
        int t = 60;
        double ab = s.AlphasCumprod[t], ab0 = s.AlphasCumprod[0];
        double Lambda(double a) => 0.5 * Math.Log(a / (1 - a));
        var x = TensorData.Floats(xT);
        foreach (var final in new[] { DpmFinalStep.Zero, DpmFinalStep.SigmaMin })
        {
            var dpm = new DpmSolverSampler(new DpmSolverOptions { Timesteps = new[] { t }, FinalStep = final, Threshold = X0Threshold.None });
            using var r = dpm.Sample(d, model, xT.shape, new SamplingRun { Start = xT });
            var got = TensorData.Floats(r.Samples);
            for (int i = 0; i < x.Length; i++)
            {
                double x0 = (x[i] - Math.Sqrt(1 - ab) * 0.5 * x[i]) / Math.Sqrt(ab);
                double h = Lambda(ab0) - Lambda(ab);
                double expected = final == DpmFinalStep.Zero ? x0
                    : Math.Sqrt((1 - ab0) / (1 - ab)) * x[i] - Math.Sqrt(ab0) * (Math.Exp(-h) - 1) * x0;
                Assert.Equal(expected, got[i], 1e-4);
            }
        }
    }

    /// <summary>
    /// Keeping the second order into the last timestep changes the samples (at three steps, the default makes them equal
    /// DDIM's; see DpmSolverTests), and on Gaussian data both stay near the exact probability-flow solution (8 log-SNR
    /// steps, largest error over 256 draws: measured 0.21 with the first-order last step, 0.044 without).
    /// </summary>
    [Fact]
    public void DpmSolverLowerOrderFinalIsAnOption()
    {
        var s = NoiseSchedule.Cosine(200);
        using var d = new GaussianDiffusion(s);
        var data = new GaussianData(s, 0.3, 0.5);
        using var model = data.Model();
        var shape = new long[] { 256, 1 };
        var ts = TimestepSelection.LogSnrSpaced(s, 8);
        using var xT = Interpolation.SeedNoise(shape, 2);
        using var exact = data.Flow(xT, 199, 0, final: true);
        double Error(bool lowerOrderFinal)
        {
            var dpm = new DpmSolverSampler(new DpmSolverOptions { Timesteps = ts, LowerOrderFinal = lowerOrderFinal, Threshold = X0Threshold.None });
            using var r = dpm.Sample(d, model, shape, new SamplingRun { Start = xT });
            return (r.Samples.to(ScalarType.Float64) - exact).abs().max().item<double>();
        }
        double first = Error(true), second = Error(false);
        Assert.NotEqual(first, second);
        Assert.True(first < 0.3 && second < 0.1, $"errors {first}, {second}");
    }

    /// <summary>
    /// v-prediction near t = 0: eps from v directly (sqrt(ab) v + sqrt(1 - ab) x_t) matches the float64 value to float32
    /// precision, where eps recomputed from x_0 divides by sqrt(1 - ab) and loses digits.
    /// </summary>
    [Fact]
    public void VelocityModelsKeepEpsPrecisionNearTimestepZero()
    {
        var s = NoiseSchedule.Linear(1000);
        using var d = new GaussianDiffusion(s, prediction: PredictionType.Velocity);
        using var scope = NewDisposeScope();
        var gen = new TorchSharp.torch.Generator(3, CPU);
        var x0 = randn(new long[] { 64, 8 }, generator: gen).clamp(-1, 1);
        var eps = randn(new long[] { 64, 8 }, generator: gen);
        var t = zeros(64, dtype: ScalarType.Int64);
        double ab = s.AlphasCumprod[0];
        var x064 = x0.to(ScalarType.Float64);
        var eps64 = eps.to(ScalarType.Float64);
        var xt64 = Math.Sqrt(ab) * x064 + Math.Sqrt(1 - ab) * eps64;
        var v64 = Math.Sqrt(ab) * eps64 - Math.Sqrt(1 - ab) * x064;
        var xt = xt64.to(ScalarType.Float32);
        var v = v64.to(ScalarType.Float32);
        // The float64 eps the float32 inputs imply.
        var expected = Math.Sqrt(ab) * v.to(ScalarType.Float64) + Math.Sqrt(1 - ab) * xt.to(ScalarType.Float64);
        var (direct, _) = d.PredictEpsAndX0(v, xt, t, clipDenoised: false);
        var viaX0 = d.PredictEpsFromX0(xt, t, d.PredictX0FromVelocity(xt, t, v));
        double directError = (direct.to(ScalarType.Float64) - expected).abs().max().item<double>();
        double viaX0Error = (viaX0.to(ScalarType.Float64) - expected).abs().max().item<double>();
        Assert.True(directError < 1e-6, $"direct {directError}");
        Assert.True(viaX0Error > 10 * directError, $"via x_0 {viaX0Error}, direct {directError}");
    }

    /// <summary>
    /// T = 4000 (improved DDPM's longest) with every sampler (the ancestral one respaced to 200 steps; over all T it is
    /// the plain loop of AncestralSamplerTests), linear (rescaled as improved-diffusion does) and cosine:
    /// with the optimal model of Gaussian data the samples must have the data's mean and std.
    /// </summary>
    [Theory]
    [InlineData(ScheduleKind.Linear)]
    [InlineData(ScheduleKind.Cosine)]
    public void EverySamplerHandlesFourThousandSteps(ScheduleKind kind)
    {
        const int T = 4000;
        var s = kind == ScheduleKind.Linear ? NoiseSchedule.Linear(T, 1e-4 * 1000 / T, 0.02 * 1000 / T) : NoiseSchedule.Cosine(T);
        using var d = new GaussianDiffusion(s, VarianceType.FixedSmall);
        var data = new GaussianData(s, 0.2, 0.3);
        using var model = data.Model();
        var all = new List<string>();
        foreach (var sampler in new ISampler[]
        {
            new AncestralSampler(new AncestralOptions { Steps = 200, Threshold = X0Threshold.None }),
            new DdimSampler(new DdimOptions { Steps = 100, Eta = 1.0, Threshold = X0Threshold.None }),
            new DdimSampler(new DdimOptions { Threshold = X0Threshold.None }),
            new DpmSolverSampler(new DpmSolverOptions { Threshold = X0Threshold.None }),
        })
        {
            using var r = sampler.Sample(d, model, new long[] { 2000, 1 }, SamplingRun.Seeded(1));
            double mean = r.Samples.mean().item<float>(), std = r.Samples.std().item<float>();
            string line = $"{sampler.Describe(s)}: mean {mean:F4}, std {std:F4}";
            all.Add(line);
            // Sampling error of 2000 draws: 0.3 / sqrt(2000) = 0.007 for the mean, 0.005 for the std; the deterministic
            // samplers also carry x_T's own sample std (3 % off for this seed) into theirs.
            Assert.True(Math.Abs(mean - 0.2) < 0.025, string.Join("; ", all));
            Assert.True(Math.Abs(std - 0.3) < 0.03, string.Join("; ", all));
        }
    }
}

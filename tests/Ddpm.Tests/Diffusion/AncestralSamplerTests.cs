using Ddpm.Tests.Sampling;
using Ddpm.Diffusion;
using Ddpm.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Diffusion;

public class AncestralSamplerTests
{
    private sealed class Recorder : IProgress<int>
    {
        private readonly Action<int>? _onReport;
        public Recorder(Action<int>? onReport = null) => _onReport = onReport;
        public List<int> Reports { get; } = new();
        public void Report(int value)
        {
            Reports.Add(value);
            _onReport?.Invoke(value);
        }
    }

    private static FuncModel Shrink() => new((x, _) => x * 0.2f);

    [Fact]
    public void SameSeedSameSamplesDifferentSeedDifferentSamples()
    {
        using var d = new GaussianDiffusion(NoiseSchedule.Linear(30));
        using var model = Shrink();
        manual_seed(123);
        using var a = TestSampling.Ancestral(d, model, new long[] { 4, 1, 3, 3 }, new SampleOptions { Seed = 9 });
        manual_seed(456); // the global RNG state must not matter
        randn(10).Dispose();
        using var b = TestSampling.Ancestral(d, model, new long[] { 4, 1, 3, 3 }, new SampleOptions { Seed = 9 });
        using var c = TestSampling.Ancestral(d, model, new long[] { 4, 1, 3, 3 }, new SampleOptions { Seed = 10 });
        Assert.Equal(new long[] { 4, 1, 3, 3 }, a.Samples.shape);
        Assert.Equal(DeviceType.CPU, a.Samples.device_type);
        Assert.Equal(TensorData.Floats(a.Samples), TensorData.Floats(b.Samples));
        Assert.NotEqual(TensorData.Floats(a.Samples), TensorData.Floats(c.Samples));
        Assert.Empty(a.Trajectory);
        Assert.Equal(90, model.Calls);
    }

    [Fact]
    public void TrajectoryKeepsTheRequestedSteps()
    {
        using var d = new GaussianDiffusion(NoiseSchedule.Cosine(20));
        using var model = Shrink();
        var progress = new Recorder();
        using var r = TestSampling.Ancestral(d, model, new long[] { 2, 5 },
            new SampleOptions { Seed = 1, KeepEvery = 5, ClipDenoised = false }, progress: progress);
        Assert.Equal(new[] { 15, 10, 5, 0, -1 }, r.Trajectory.Select(f => f.T).ToArray());
        foreach (var f in r.Trajectory)
        {
            Assert.Equal(new long[] { 2, 5 }, f.Xt.shape);
            Assert.Equal(new long[] { 2, 5 }, f.PredX0.shape);
            Assert.Equal(DeviceType.CPU, f.Xt.device_type);
        }
        Assert.Equal(TensorData.Floats(r.Samples), TensorData.Floats(r.Trajectory[^1].Xt));
        Assert.Equal(Enumerable.Range(1, 20).ToArray(), progress.Reports.ToArray());

        // The first kept state (t = 15) is already four steps away from x_T.
        using var g = new Generator(1, CPU);
        using var xT = randn(new long[] { 2, 5 }, generator: g);
        Assert.NotEqual(TensorData.Floats(xT), TensorData.Floats(r.Trajectory[0].Xt));
        // Keeping a trajectory does not change the samples.
        using var noTrajectory = TestSampling.Ancestral(d, model, new long[] { 2, 5 },
            new SampleOptions { Seed = 1, ClipDenoised = false });
        Assert.Equal(TensorData.Floats(noTrajectory.Samples), TensorData.Floats(r.Samples));
    }

    [Fact]
    public void FirstStepStartsFromSeededStandardNormal()
    {
        using var d = new GaussianDiffusion(NoiseSchedule.Linear(3));
        Tensor? seen = null;
        using var model = new FuncModel((x, t) =>
        {
            if (seen is null) seen = x.clone().DetachFromDisposeScope();
            Assert.Equal(ScalarType.Int64, t.dtype);
            return zeros_like(x);
        });
        using var r = TestSampling.Ancestral(d, model, new long[] { 3, 2 }, new SampleOptions { Seed = 77, KeepEvery = 1 });
        using var g = new Generator(77, CPU);
        using var xT = randn(new long[] { 3, 2 }, generator: g);
        Assert.Equal(TensorData.Floats(xT), TensorData.Floats(seen!));
        Assert.Equal(TensorData.Floats(xT), TensorData.Floats(r.Trajectory[0].Xt));
        Assert.Equal(2, r.Trajectory[0].T);
        seen!.Dispose();
    }

    [Fact]
    public void ModelIsRunInEvalModeWithoutGradAndItsModeRestored()
    {
        using var d = new GaussianDiffusion(NoiseSchedule.Linear(4));
        var modes = new List<(bool Training, bool Grad)>();
        FuncModel? model = null;
        model = new FuncModel((x, _) =>
        {
            modes.Add((model!.training, is_grad_enabled()));
            return zeros_like(x);
        });
        model.train();
        using (TestSampling.Ancestral(d, model, new long[] { 1, 2 }, new SampleOptions())) { }
        Assert.All(modes, m => Assert.Equal((false, false), m));
        Assert.True(model.training);
        model.Dispose();
    }

    [Fact]
    public void CancellationStopsBetweenSteps()
    {
        using var d = new GaussianDiffusion(NoiseSchedule.Linear(50));
        using var model = Shrink();
        using var cts = new CancellationTokenSource();
        var progress = new Recorder(done => { if (done == 7) cts.Cancel(); });
        using (TestSampling.Ancestral(d, model, new long[] { 2, 2 }, new SampleOptions())) { } // creates the coefficient cache
        model.Calls = 0;
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        Assert.ThrowsAny<OperationCanceledException>(() =>
            TestSampling.Ancestral(d, model, new long[] { 2, 2 }, new SampleOptions { KeepEvery = 2 }, progress: progress,
                cancellationToken: cts.Token));
        Assert.Equal(7, model.Calls);
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void LiveTensorCountDoesNotGrowWithSteps()
    {
        using var d = new GaussianDiffusion(NoiseSchedule.Linear(300));
        using var model = Shrink();
        var live = new Dictionary<int, long>();
        var progress = new Recorder(done => live[done] = DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        using (var r = TestSampling.Ancestral(d, model, new long[] { 8, 1, 4, 4 }, new SampleOptions(), progress: progress))
        {
            Assert.Equal(live[5], live[100]);
            Assert.Equal(live[5], live[299]);
        }
        // The per-device coefficient cache (created on first use) is the only thing left.
        long cache = DisposeScopeManager.Statistics.ThreadTotalLiveCount - before;
        using (TestSampling.Ancestral(d, model, new long[] { 8, 1, 4, 4 }, new SampleOptions { KeepEvery = 10 })) { }
        Assert.Equal(before + cache, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void BadArgumentsAreUserErrors()
    {
        using var d = new GaussianDiffusion(NoiseSchedule.Linear(4));
        using var model = Shrink();
        Assert.Throws<DdpmException>(() => TestSampling.Ancestral(d, model, new long[] { 4 }, new SampleOptions()));
        Assert.Throws<DdpmException>(() => TestSampling.Ancestral(d, model, new long[] { 0, 2 }, new SampleOptions()));
        Assert.Throws<DdpmException>(() => TestSampling.Ancestral(d, model, new long[] { 1, 2 }, new SampleOptions { KeepEvery = -1 }));
    }

    /// <summary>
    /// With data x_0 ~ N(mu, s^2) per coordinate the optimal eps-model is known in closed form:
    /// E[eps | x_t] = sqrt(1 - ab) (x_t - sqrt(ab) mu) / (ab s^2 + 1 - ab). Every reverse step is then affine in x_t
    /// plus Gaussian noise, so the law of the samples follows exactly from a mean/variance recursion computed here in
    /// double; the sampler must match it within sampling error, and it must be close to the data law.
    /// </summary>
    [Theory]
    [InlineData(VarianceType.FixedSmall)]
    [InlineData(VarianceType.FixedLarge)]
    public void ExactScoreOfGaussianDataSamplesTheDataDistribution(VarianceType vt)
    {
        const double mu = 0.4, sd = 0.3;
        var s = NoiseSchedule.Linear(200, 5e-4, 0.1); // the paper's schedule rescaled to 200 steps
        using var d = new GaussianDiffusion(s, vt);
        using var ab = tensor(s.AlphasCumprod, dtype: ScalarType.Float64);
        using var model = new FuncModel((x, t) =>
        {
            var a = ab.gather(0, t).view(-1, 1);
            var eps = (1 - a).sqrt() * (x.to(ScalarType.Float64) - a.sqrt() * mu) / (a * (sd * sd) + 1 - a);
            return eps.to(ScalarType.Float32);
        });
        const int n = 10_000;
        using var r = TestSampling.Ancestral(d, model, new long[] { n, 1 }, new SampleOptions { Seed = 5, ClipDenoised = false });
        double mean = r.Samples.mean().item<float>();
        double std = r.Samples.std().item<float>();

        // x_{t-1} = A x_t + B + sigma z with x0_hat = sqrt(1/ab) x_t - sqrt(1/ab - 1) eps and mean = c1 x0_hat + c2 x_t.
        double m = 0, v = 1;
        for (int t = s.Timesteps - 1; t >= 0; t--)
        {
            double a = s.AlphasCumprod[t], b = s.Betas[t], aPrev = t > 0 ? s.AlphasCumprod[t - 1] : 1.0;
            double c1 = b * Math.Sqrt(aPrev) / (1 - a), c2 = (1 - aPrev) * Math.Sqrt(1 - b) / (1 - a);
            double k = Math.Sqrt(1 - a) / (a * sd * sd + 1 - a);
            double slope = c1 * (Math.Sqrt(1 / a) - Math.Sqrt(1 / a - 1) * k) + c2;
            double offset = c1 * Math.Sqrt(1 / a - 1) * k * Math.Sqrt(a) * mu;
            double sigma2 = t == 0 ? 0 : vt == VarianceType.FixedLarge ? b : b * (1 - aPrev) / (1 - a);
            m = slope * m + offset;
            v = slope * slope * v + sigma2;
        }
        double expectedStd = Math.Sqrt(v);
        Assert.True(Math.Abs(mean - m) < 5 * expectedStd / Math.Sqrt(n), $"mean {mean}, expected {m}");
        Assert.True(Math.Abs(std - expectedStd) < 5 * expectedStd / Math.Sqrt(2.0 * n), $"std {std}, expected {expectedStd}");
        // And the sampler's law is close to the data's (fixedsmall is a little narrow at 200 steps).
        Assert.True(Math.Abs(mean - mu) < 0.01, $"mean {mean}");
        Assert.True(Math.Abs(std - sd) < 0.06 * sd, $"std {std}");
    }
}

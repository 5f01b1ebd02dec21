using Ddpm.Diffusion;
using Ddpm.Sampling;
using Ddpm.Tests.Diffusion;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ddpm.Tests.Sampling;

public class DpmSolverTests
{
    private readonly ITestOutputHelper _out;
    public DpmSolverTests(ITestOutputHelper output) => _out = output;

    private static readonly SampleOptions NoThreshold = new() { Seed = 4, Threshold = X0Threshold.None };

    /// <summary>Mean |sample - exact| for a sampler on Gaussian data with the optimal model, over the given timesteps.</summary>
    private static double Error(GaussianData data, GaussianDiffusion d, Func<FuncModel, int[], SampleResult> run, int[] ts)
    {
        using var model = data.Model();
        using var r = run(model, ts);
        using var xT = Interpolation.SeedNoise(r.Samples.shape, NoThreshold.Seed);
        using var exact = data.Flow(xT, ts[^1], ts[0], final: true);
        return (r.Samples.to(ScalarType.Float64) - exact).abs().mean().item<double>();
    }

    /// <summary>
    /// With Gaussian data and the optimal model, the probability-flow ODE has a closed-form solution, so the
    /// discretisation error of each solver is measurable alone: steps evenly spaced in log-SNR, 10 to 80 of them.
    /// </summary>
    [Fact]
    public void ConvergesAtSecondOrderToTheExactOdeSolutionWhereDdimIsFirstOrder()
    {
        var s = NoiseSchedule.Linear(1000);
        using var d = new GaussianDiffusion(s);
        var data = new GaussianData(s, 0.3, 0.5);
        var shape = new long[] { 256, 4 };
        var dpm = new List<double>();
        var ddim = new List<double>();
        foreach (int n in new[] { 10, 20, 40, 80 })
        {
            var ts = TimestepSelection.LogSnrSpaced(s, n);
            dpm.Add(Error(data, d, (m, t) => TestSampling.Dpm(d, m, shape, t, NoThreshold), ts));
            ddim.Add(Error(data, d, (m, t) => TestSampling.Ddim(d, m, shape, t, 0.0, NoThreshold), ts));
        }
        string report = $"dpm-solver++ {string.Join(", ", dpm.Select(e => e.ToString("E2")))}; ddim {string.Join(", ", ddim.Select(e => e.ToString("E2")))}";
        _out.WriteLine(report);
        // Halving the step divides the error by about 4 (second order) once in the asymptotic range ...
        Assert.True(dpm[1] / dpm[2] > 3.0 && dpm[2] / dpm[3] > 3.0, report);
        // ... and DDIM's (DPM-Solver++'s first order) by about 2.
        for (int i = 0; i + 1 < ddim.Count; i++) Assert.InRange(ddim[i] / ddim[i + 1], 1.7, 2.4);
        for (int i = 0; i < dpm.Count; i++) Assert.True(dpm[i] < 0.2 * ddim[i], report);
    }

    /// <summary>The adapter turns eps-, x_0- and v-outputs of the same (optimal) model into the same samples.</summary>
    [Theory]
    [InlineData("dpm-solver")]
    [InlineData("ddim")]
    public void EpsStartAndVelocityModelsGiveTheSameSamples(string name)
    {
        var s = NoiseSchedule.Cosine(500);
        var data = new GaussianData(s, -0.2, 0.4);
        var sampler = SamplerRegistry.Create(name, o => o with { Steps = 15, Threshold = X0Threshold.Clip });
        if (sampler.Options is DdimOptions ddim) sampler = sampler.With(ddim with { Eta = 0.5 });
        float[] Run(int modelKind, PredictionType output)
        {
            using var d = new GaussianDiffusion(s, VarianceType.FixedLarge, output);
            using var model = data.Model(modelKind);
            using var r = sampler.Sample(d, model, new long[] { 64, 3 }, SamplingRun.Seeded(8));
            return TensorData.Floats(r.Samples);
        }
        var eps = Run(0, PredictionType.Epsilon);
        var start = Run(1, PredictionType.StartX);
        var velocity = Run(2, PredictionType.Velocity);
        for (int i = 0; i < eps.Length; i++)
        {
            Assert.Equal(eps[i], start[i], 3e-4);
            Assert.Equal(eps[i], velocity[i], 3e-4);
        }
    }

    /// <summary>
    /// The first step (no history) and the step into the last timestep are first order, i.e. DDIM with eta = 0: with
    /// at most three timesteps the two samplers agree; with four the second-order step makes them differ.
    /// </summary>
    [Fact]
    public void FirstOrderStepsAreDdim()
    {
        var s = NoiseSchedule.Linear(100);
        using var d = new GaussianDiffusion(s);
        using var model = new GaussianData(s, 0.1, 0.6).Model();
        var shape = new long[] { 16, 2 };
        foreach (var ts in new[] { new[] { 99 }, new[] { 0, 99 }, new[] { 10, 50, 99 }, new[] { 0, 30, 60, 99 } })
        {
            using var a = TestSampling.Dpm(d, model, shape, ts, NoThreshold);
            using var b = TestSampling.Ddim(d, model, shape, ts, 0.0, NoThreshold);
            bool same = a.Samples.allclose(b.Samples, rtol: 1e-5, atol: 1e-6);
            Assert.True(ts.Length <= 3 ? same : !same, $"timesteps {string.Join(",", ts)}");
        }
    }

    [Fact]
    public void DeterministicGivenTheSeedWithFramesProgressAndNoLeaks()
    {
        var s = NoiseSchedule.Linear(200);
        using var d = new GaussianDiffusion(s);
        using var model = new GaussianData(s, 0.0, 0.5).Model();
        var shape = new long[] { 4, 3 };
        var ts = new[] { 0, 20, 50, 100, 150, 199 };
        var reports = new List<int>();
        manual_seed(1);
        using var a = TestSampling.Dpm(d, model, shape, ts, new SampleOptions { Seed = 3, KeepEvery = 2 },
            progress: new Ddpm.Runtime.SyncProgress<int>(reports.Add));
        manual_seed(2);
        using var b = TestSampling.Dpm(d, model, shape, ts, new SampleOptions { Seed = 3 });
        using var c = TestSampling.Dpm(d, model, shape, ts, new SampleOptions { Seed = 4 });
        Assert.Equal(TensorData.Floats(a.Samples), TensorData.Floats(b.Samples));
        Assert.NotEqual(TensorData.Floats(a.Samples), TensorData.Floats(c.Samples));
        Assert.Equal(new[] { 1, 2, 3, 4, 5, 6 }, reports);
        // Every second visited step counted from the smallest, labelled with original timesteps, then the final frame.
        Assert.Equal(new[] { 150, 50, 0, -1 }, a.Trajectory.Select(f => f.T).ToArray());
        Assert.Equal(TensorData.Floats(a.Samples), TensorData.Floats(a.Trajectory[^1].Xt));
        using (var xT = Interpolation.SeedNoise(shape, 3))
            Assert.NotEqual(TensorData.Floats(xT), TensorData.Floats(a.Trajectory[0].Xt));

        using var cts = new CancellationTokenSource();
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        Assert.ThrowsAny<OperationCanceledException>(() => TestSampling.Dpm(d, model, shape, ts, new SampleOptions { KeepEvery = 1 },
            progress: new Ddpm.Runtime.SyncProgress<int>(k => { if (k == 3) cts.Cancel(); }), cancellationToken: cts.Token));
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        using (TestSampling.Dpm(d, model, shape, ts, new SampleOptions { KeepEvery = 1 })) { }
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}

using System.Diagnostics;
using Ddpm.Diffusion;
using Ddpm.Sampling;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Tests.Diffusion;

/// <summary>
/// Trains a small eps-MLP on a 2-D mixture of 8 Gaussians with L_simple and samples it with the ancestral sampler:
/// the whole DDPM loop on data whose law is known.
/// </summary>
public class ToyEndToEndTests
{
    private const int Modes = 8;
    private const double Radius = 0.7, ModeStd = 0.05;

    /// <summary>eps_theta(x, t): x concatenated with a sinusoidal embedding of t, then a 3-layer SiLU MLP.</summary>
    private sealed class ToyEpsModel : nn.Module<Tensor, Tensor, Tensor>
    {
        private const int EmbDim = 32, Hidden = 128;
        private readonly Linear fc1, fc2, fc3, fc_out;
        private readonly Tensor _freqs;

        public ToyEpsModel() : base("toy_eps")
        {
            fc1 = nn.Linear(2 + EmbDim, Hidden);
            fc2 = nn.Linear(Hidden, Hidden);
            fc3 = nn.Linear(Hidden, Hidden);
            fc_out = nn.Linear(Hidden, 2);
            int half = EmbDim / 2;
            var f = Enumerable.Range(0, half).Select(i => (float)Math.Exp(-Math.Log(10000.0) * i / half)).ToArray();
            _freqs = tensor(f).DetachFromDisposeScope();
            RegisterComponents();
        }

        public override Tensor forward(Tensor x, Tensor t)
        {
            using var scope = NewDisposeScope();
            var args = t.to(ScalarType.Float32).unsqueeze(1) * _freqs.to(x.device).unsqueeze(0);
            var h = cat(new[] { x, args.sin(), args.cos() }, 1);
            h = nn.functional.silu(fc1.call(h));
            h = nn.functional.silu(fc2.call(h));
            h = nn.functional.silu(fc3.call(h));
            return fc_out.call(h).MoveToOuterDisposeScope();
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _freqs.Dispose();
            base.Dispose(disposing);
        }
    }

    private static double[,] Centers()
    {
        var c = new double[Modes, 2];
        for (int k = 0; k < Modes; k++)
        {
            c[k, 0] = Radius * Math.Cos(2 * Math.PI * k / Modes);
            c[k, 1] = Radius * Math.Sin(2 * Math.PI * k / Modes);
        }
        return c;
    }

    /// <summary>n points of the mixture from the given generator.</summary>
    private static Tensor Mixture(long n, Generator g)
    {
        using var scope = NewDisposeScope();
        var k = randint(0, Modes, new[] { n }, dtype: ScalarType.Int64, generator: g);
        var angle = k.to(ScalarType.Float32) * (float)(2 * Math.PI / Modes);
        var centres = stack(new[] { angle.cos(), angle.sin() }, 1) * (float)Radius;
        return (centres + randn(new[] { n, 2L }, generator: g) * (float)ModeStd).MoveToOuterDisposeScope();
    }

    private static double[][] Points(Tensor x)
    {
        var f = TensorData.Floats(x);
        return Enumerable.Range(0, f.Length / 2).Select(i => new double[] { f[2 * i], f[2 * i + 1] }).ToArray();
    }

    /// <summary>Sliced 1-Wasserstein distance over 64 evenly spaced directions, between equal-size sets.</summary>
    private static double SlicedWasserstein(double[][] a, double[][] b)
    {
        const int dirs = 64;
        double total = 0;
        for (int k = 0; k < dirs; k++)
        {
            double th = Math.PI * k / dirs, c = Math.Cos(th), s = Math.Sin(th);
            var pa = a.Select(p => p[0] * c + p[1] * s).Order().ToArray();
            var pb = b.Select(p => p[0] * c + p[1] * s).Order().ToArray();
            double sum = 0;
            for (int i = 0; i < pa.Length; i++) sum += Math.Abs(pa[i] - pb[i]);
            total += sum / pa.Length;
        }
        return total / dirs;
    }

    [Fact]
    public void TrainedMlpSamplesAllEightModes()
    {
        // A model this small runs fastest on one thread (and does not fight other processes for the cores).
        int threads = get_num_threads();
        set_num_threads(1);
        try
        {
            Run();
        }
        finally
        {
            set_num_threads(threads);
        }
    }

    private static void Run()
    {
        const int T = 100, Steps = 5000, Batch = 256, N = 2000;
        var clock = Stopwatch.StartNew();
        manual_seed(2024);
        using var dataGen = new Generator(11, CPU);
        var schedule = NoiseSchedule.Linear(T, 1e-4 * 1000 / T, 0.02 * 1000 / T); // improved-diffusion's rescaling
        using var diffusion = new GaussianDiffusion(schedule, VarianceType.FixedSmall); // fixedsmall suits data this narrow
        using var model = new ToyEpsModel();
        using var opt = optim.Adam(model.parameters(), lr: 2e-3);
        model.train();
        double lastLoss = 0;
        for (int step = 0; step < Steps; step++)
        {
            using var scope = NewDisposeScope();
            var x0 = Mixture(Batch, dataGen);
            var t = randint(0, T, new[] { (long)Batch }, dtype: ScalarType.Int64);
            var loss = diffusion.TrainingLosses(model, x0, t, randn_like(x0)).mean();
            opt.zero_grad();
            loss.backward();
            opt.step();
            if (step == Steps * 7 / 10) foreach (var g in opt.ParamGroups) g.LearningRate = 4e-4;
            if (step >= Steps - 100) lastLoss += loss.item<float>() / 100;
        }
        var trainTime = clock.Elapsed;

        using var result = AncestralSampler.Sample(diffusion, model, new long[] { N, 2 }, new SamplerOptions { Seed = 3 });
        var samples = Points(result.Samples);
        using var genA = new Generator(101, CPU);
        using var genB = new Generator(202, CPU);
        using var trueA = Mixture(N, genA);
        using var trueB = Mixture(N, genB);
        using var noise = randn(new long[] { N, 2 }, generator: genB);
        var a = Points(trueA);
        double swModel = SlicedWasserstein(samples, a);
        double swTrue = SlicedWasserstein(Points(trueB), a);
        double swNoise = SlicedWasserstein(Points(noise), a);

        var centers = Centers();
        var counts = new int[Modes];
        int near = 0;
        foreach (var p in samples)
        {
            int best = 0; double bestD = double.MaxValue;
            for (int k = 0; k < Modes; k++)
            {
                double dx = p[0] - centers[k, 0], dy = p[1] - centers[k, 1], dd = Math.Sqrt(dx * dx + dy * dy);
                if (dd < bestD) { bestD = dd; best = k; }
            }
            counts[best]++;
            if (bestD < 4 * ModeStd) near++;
        }
        string report = $"loss {lastLoss:F4}; SW model {swModel:F4}, two true samples {swTrue:F4}, noise {swNoise:F4}; " +
                        $"modes [{string.Join(", ", counts)}]; within 4 std {near}/{N}; train {trainTime.TotalSeconds:F1} s, total {clock.Elapsed.TotalSeconds:F1} s";
        // Every mode gets a fair share (1/8 = 250 of 2000 expected).
        Assert.All(counts, c => Assert.InRange(c, N / Modes / 2, N / Modes * 2));
        // Samples sit on the modes (true data: 99.97 % within 4 std; N(0, I) noise: about 12 %).
        Assert.True(near >= 0.6 * N, report);
        // Distance to the data law close to that between two true samples, far below noise's.
        Assert.True(swModel < 2.5 * swTrue, report);
        Assert.True(swModel < 0.2 * swNoise, report);
        Assert.True(swTrue < 0.1 * swNoise, report);
    }
}

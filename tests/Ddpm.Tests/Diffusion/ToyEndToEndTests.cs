using System.Diagnostics;
using Ddpm.Diffusion;
using Ddpm.Sampling;
using Ddpm.Tests.Sampling;
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
    private const int Modes = TrainedToy.Modes;
    private const double Radius = TrainedToy.Radius, ModeStd = TrainedToy.ModeStd;

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
            var x0 = TrainedToy.Sample(Batch, dataGen);
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
        var samples = TrainedToy.Points(result.Samples);
        using var genA = new Generator(101, CPU);
        using var genB = new Generator(202, CPU);
        using var trueA = TrainedToy.Sample(N, genA);
        using var trueB = TrainedToy.Sample(N, genB);
        using var noise = randn(new long[] { N, 2 }, generator: genB);
        var a = TrainedToy.Points(trueA);
        double swModel = TrainedToy.SlicedWasserstein(samples, a);
        double swTrue = TrainedToy.SlicedWasserstein(TrainedToy.Points(trueB), a);
        double swNoise = TrainedToy.SlicedWasserstein(TrainedToy.Points(noise), a);

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

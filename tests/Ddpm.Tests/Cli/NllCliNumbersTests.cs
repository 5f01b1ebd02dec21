using Ddpm.Diffusion;
using Ddpm.Models;
using Ddpm.Pipelines;
using Ddpm.Runs;
using Ddpm.Tests.Data;
using Ddpm.Tests.Diffusion;
using Ddpm.Training;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.Tests.Cli;

/// <summary>
/// <c>ddpm nll</c> on a checkpoint whose network is known to output eps = 0 (its zero-initialised output convolution
/// zeroed again after training), so the bound of each image follows from the data and the documented noise alone:
/// batch b draws one N(0, I) per timestep, t = T-1 down to 0, from a CPU generator seeded with seed + b; x_t =
/// sqrt(ab_t) x_0 + sqrt(1 - ab_t) z; the predicted x_0 is x_t / sqrt(ab_t) (clipped to [-1, 1] unless --no-clip).
/// <see cref="HandBound"/> evaluates every term from the formulas in float64.
/// </summary>
public class NllCliNumbersTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => TestUtil.Cli(args);

    [Fact]
    public void BitsPerDimOfAZeroOutputModelEqualTheHandComputedBound()
    {
        var dir = TestUtil.TempDir();
        var (idx, cfgPath) = TestUtil.WriteTinyRunInputs(dir, images: 8, steps: 1);
        var run = Path.Combine(dir, "run");
        var train = Run("train", "--config", cfgPath, "--run-dir", run, "--no-progress");
        Assert.True(train.Code == 0, train.Err + train.Out);

        // Zero the output convolution of the EMA weights (what nll uses): the network then outputs exactly 0.
        var checkpoint = CheckpointStore.Resolve(run);
        var config = CheckpointStore.ReadState(checkpoint).Config;
        using (var net = new UNet(config.Model!))
        {
            var ema = Path.Combine(checkpoint, CheckpointStore.EmaFile);
            CheckpointStore.LoadWeights(net, ema);
            using (no_grad())
                foreach (var (name, p) in net.named_parameters())
                    if (name.StartsWith("conv_out.", StringComparison.Ordinal)) p.zero_();
            net.save_safetensors(ema);
        }

        // TinyConfig: T = 12, linear betas 1e-4 .. 0.02, fixedlarge, eps prediction.
        Assert.Equal((12, ScheduleKind.Linear, VarianceType.FixedLarge, PredictionType.Epsilon), (config.Timesteps, config.Schedule, config.Variance, config.Prediction));
        var hand = new HandBound(HandBound.Linear(12, 1e-4, 0.02), fixedLarge: true);
        var (bytes, dims) = IdxBytes.Read(idx);
        int pixels = dims[1] * dims[2];
        var images = Enumerable.Range(0, 3).Select(i => bytes.AsSpan(i * pixels, pixels).ToArray().Select(b => (double)(float)(b / 127.5 - 1)).ToArray()).ToArray();

        foreach (bool clip in new[] { true, false })
        {
            var json = Path.Combine(dir, $"nll-{clip}.json");
            var args = new List<string> { "nll", "--checkpoint", run, "--data", idx, "--count", "3", "--batch-size", "2", "--seed", "5", "--output", json, "--no-progress" };
            if (!clip) args.Add("--no-clip");
            var nll = Run(args.ToArray());
            Assert.True(nll.Code == 0, nll.Err + nll.Out);
            var report = NllReport.FromJson(File.ReadAllText(json));
            Assert.Equal(clip, report.ClipDenoised);

            var expected = new double[3];
            foreach (var (first, count, seed) in new[] { (0, 2, 5L), (2, 1, 6L) }) // batch b uses seed + b
            {
                using var gen = new Generator((ulong)seed, CPU);
                for (int t = hand.T - 1; t >= 0; t--)
                {
                    using var z = randn(new long[] { count, 1, dims[1], dims[2] }, dtype: ScalarType.Float32, generator: gen);
                    var noise = z.data<float>().ToArray();
                    for (int k = 0; k < count; k++)
                    {
                        var x0 = images[first + k];
                        var xt = hand.Diffuse(t, x0, noise.AsSpan(k * pixels, pixels).ToArray().Select(v => (double)v).ToArray());
                        double root = Math.Sqrt(hand.AlphaBar(t));
                        var predX0 = xt.Select(v => clip ? Math.Clamp(v / root, -1, 1) : v / root).ToArray();
                        expected[first + k] += hand.Term(t, x0, xt, predX0);
                    }
                }
            }
            for (int i = 0; i < 3; i++) expected[i] += hand.Prior(images[i]);

            // The library diffuses and predicts in float32: each image's bound (here 4 to 40 bits/dim) agrees to 1e-5 relative.
            for (int i = 0; i < 3; i++)
                Assert.True(Math.Abs(expected[i] - report.PerImage[i]) <= 1e-5 * expected[i],
                    $"clip {clip}, image {i}: expected {expected[i]:R}, got {report.PerImage[i]:R}");
            Assert.True(Math.Abs(expected.Average() - report.BitsPerDim.Mean) <= 1e-5 * expected.Average());
            Assert.Contains("bits/dim " + report.BitsPerDim.Mean.ToString("F4", System.Globalization.CultureInfo.InvariantCulture), nll.Out); // the printout is the report's
        }
    }
}

using Ddpm.Data;
using Ddpm.Sampling;
using Ddpm.Tests.Sampling;
using static TorchSharp.torch;

namespace Ddpm.Tests.Cli;

/// <summary>
/// Opens the figures <c>ddpm diffuse</c> draws: forward.png (one row per image, x_t at the frame timesteps, column 0
/// the data) and, with a checkpoint, reverse.png (per image a row of x_t and a row of predicted x_0).
/// </summary>
[Collection(CliOutputCollection.Name)]
public class DiffuseOutputTests : OneThreadTest
{
    private const int Size = 8, Scale = 2; // 8x8 images are enlarged 2x (Trainer.GridScale: 2 up to 32 pixels)
    private readonly TinyRun _run;
    public DiffuseOutputTests(TinyRun run) => _run = run;

    [Fact]
    public void NormalCdfMatchesTheTables()
    {
        // Standard normal table values: Phi(1) = 0.8413447461, Phi(-1.96) = 0.0249978952, Phi(-4) = 3.167124e-5.
        Assert.Equal(0.8413447461, QuantisedGaussian.Phi(1), 7);
        Assert.Equal(0.0249978952, QuantisedGaussian.Phi(-1.96), 7);
        Assert.Equal(3.167124e-5, QuantisedGaussian.Phi(-4), 9);
        // N(0, 1) saturates a byte from x >= 254.5 / 127.5 - 1 = 0.996078 up: P(255) = 1 - Phi(0.996078) = 0.1596060
        // (Python: 0.5 * math.erfc(0.996078431 / sqrt(2))).
        var p = QuantisedGaussian.ByteProbabilities(0, 1);
        Assert.Equal(1.0, p.Sum(), 12);
        Assert.Equal(0.1596060, p[255], 6);
        Assert.Equal(p[255], p[0], 9);
    }

    [Fact]
    public void ForwardFigureWithoutCheckpointStartsFromTheStoredBytesAndFollowsQ()
    {
        var dir = TestUtil.TempDir();
        // 64 images of 8x8 bytes, mostly bright (96..255, so the mean of x_0 is far from 0 and the mean of x_t depends on
        // sqrt(alpha_bar_t)), with a 0 and a 255 to see the extremes pass through.
        const int n = 64;
        var rng = new Random(20240);
        var bytes = Enumerable.Range(0, n * Size * Size).Select(_ => (byte)rng.Next(96, 256)).ToArray();
        bytes[0] = 0;
        bytes[1] = 255;
        var idx = Path.Combine(dir, "images-idx3-ubyte.gz");
        Idx.WriteImages(idx, bytes, n, Size, Size, gzip: true);

        var (code, output, err) = TestUtil.Cli("diffuse", "--data", idx, "--count", "64", "--frames", "5", "--seed", "3",
            "--output-dir", dir, "--device", "cpu", "--threads", "1", "--no-progress");
        Assert.True(code == 0, err);
        // T = 1000 (the default, linear); frame i shows t = round(i 999 / 4): 0, 249.75 -> 250, 499.5 -> 500 (half to even),
        // 749.25 -> 749, 999.
        int[] shown = { 0, 250, 500, 749, 999 };
        Assert.Contains("64 images, x_t at t = 0, 250, 500, 749, 999 (0-based; column 0 is the data)", output);
        Assert.False(File.Exists(Path.Combine(dir, "reverse.png")), "no checkpoint, no reverse process");

        // 5 columns, 64 rows of 16-pixel cells: 5 x 18 + 2 = 92 wide, 64 x 18 + 2 = 1154 high.
        var layout = new GridLayout(5, 64, Size, Scale);
        Assert.Equal((92, 1154), (layout.Width, layout.Height));
        var png = GreyPng.Read(Path.Combine(dir, "forward.png"));
        layout.CheckFrame(png, used: 320);

        // Column 0 is the data exactly as stored.
        for (int r = 0; r < n; r++)
            Assert.Equal(bytes.AsSpan(r * 64, 64).ToArray(), layout.Cell(png, r * 5));

        // Columns 1-4 are draws from q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I) (reference.md section 1),
        // with the linear betas 1e-4 .. 0.02 computed here. Pixels are independent given x_0, so each column's sum of bytes,
        // sum of squared bytes and count of saturated bytes (0 or 255) is a sum of 4096 independent terms whose mean and
        // variance follow from each pixel's quantised Gaussian: each must lie within 4.5 standard errors (a false alarm
        // for a correct process has probability below 1e-5 per statistic).
        var alphaBar = LinearAlphaBar(1000);
        for (int j = 1; j < 5; j++)
        {
            double a = alphaBar[shown[j]];
            var cells = Enumerable.Range(0, n).SelectMany(r => layout.Cell(png, r * 5 + j)).ToArray();
            CheckColumn(cells, bytes, Math.Sqrt(a), Math.Sqrt(1 - a), $"t = {shown[j]}");
        }
        // The last column is near-pure noise: alpha_bar_999 = 4.0e-5, so the same statistics also fit N(0, I) itself.
        Assert.InRange(alphaBar[999], 3e-5, 5e-5);
        var last = Enumerable.Range(0, n).SelectMany(r => layout.Cell(png, r * 5 + 4)).ToArray();
        CheckColumn(last, bytes, 0, 1, "N(0, I)");
    }

    /// <summary>alpha_bar_t = prod_{s &lt;= t} (1 - beta_s), beta = linspace(1e-4, 0.02, T) (the paper's schedule).</summary>
    private static double[] LinearAlphaBar(int T)
    {
        var result = new double[T];
        double product = 1;
        for (int t = 0; t < T; t++)
        {
            product *= 1 - (1e-4 + t * (0.02 - 1e-4) / (T - 1));
            result[t] = product;
        }
        return result;
    }

    /// <summary>Checks a column's bytes against N(scaleX0 x_0, s^2) per pixel, x_0 = data / 127.5 - 1.</summary>
    private static void CheckColumn(byte[] observed, byte[] data, double scaleX0, double s, string what)
    {
        var statistics = new (string Name, Func<int, double> F)[]
        {
            ("sum of bytes", k => k), ("sum of squared bytes", k => (double)k * k), ("saturated bytes", k => k is 0 or 255 ? 1 : 0),
        };
        var mean = new double[3];
        var variance = new double[3];
        var sum = new double[3];
        for (int i = 0; i < observed.Length; i++)
        {
            var p = QuantisedGaussian.ByteProbabilities(scaleX0 * (data[i] / 127.5 - 1), s);
            for (int j = 0; j < 3; j++)
            {
                var (m, v) = QuantisedGaussian.Moments(p, statistics[j].F);
                mean[j] += m;
                variance[j] += v;
                sum[j] += statistics[j].F(observed[i]);
            }
        }
        for (int j = 0; j < 3; j++)
        {
            double z = (sum[j] - mean[j]) / Math.Sqrt(variance[j]);
            Assert.True(Math.Abs(z) < 4.5, $"{what}: {statistics[j].Name} {sum[j]} against the expected {mean[j]:F1} is {z:F2} standard errors off");
        }
    }

    [Fact]
    public void WithACheckpointTheReverseFigureEndsInTheLibrarysSample()
    {
        var dir = TestUtil.TempDir();
        var (code, output, err) = TestUtil.Cli("diffuse", "-c", _run.Run, "--count", "2", "--frames", "5", "--seed", "4",
            "--output-dir", dir, "--device", "cpu", "--threads", "1", "--no-progress");
        Assert.True(code == 0, err);

        // Forward figure from the run's own training data (still there): T = 12, t = round(i 11 / 4) = 0, 2.75 -> 3,
        // 5.5 -> 6 (half to even), 8.25 -> 8, 11; 2 rows x 5 columns: 92 x 38 pixels; column 0 holds the first two stored images.
        Assert.Contains("2 images, x_t at t = 0, 3, 6, 8, 11", output);
        var forwardLayout = new GridLayout(5, 2, Size, Scale);
        Assert.Equal((92, 38), (forwardLayout.Width, forwardLayout.Height));
        var forward = GreyPng.Read(Path.Combine(dir, "forward.png"));
        forwardLayout.CheckFrame(forward, used: 10);
        var (_, h, w, stored) = PixelFacts.ReadIdxGz(Path.Combine(_run.Dir, "images-idx3-ubyte.gz"));
        Assert.Equal((Size, Size), (h, w));
        Assert.Equal(stored[..64], forwardLayout.Cell(forward, 0));
        Assert.Equal(stored[64..128], forwardLayout.Cell(forward, 5));

        // Reverse figure: frames kept every max(1, (12 - 1) / (5 - 1)) = 2 steps (t = 10, 8, 6, 4, 2, 0) plus the final
        // sample: 7 frames, of which 5 are shown (indices round(i 6 / 4) = 0, 2, 3, 4, 6). Rows: image 0's x_t, image 0's
        // predicted x_0, image 1's x_t, image 1's predicted x_0. 5 x 18 + 2 = 92 wide, 4 x 18 + 2 = 74 high.
        var layout = new GridLayout(5, 4, Size, Scale);
        Assert.Equal((92, 74), (layout.Width, layout.Height));
        var reverse = GreyPng.Read(Path.Combine(dir, "reverse.png"));
        layout.CheckFrame(reverse, used: 20);

        // The last x_t column is the sample the ancestral sampler draws with the EMA weights and the same seed.
        using var ema = new RunWeights(_run.Run, ema: true);
        using var scope = NewDisposeScope();
        using var result = TestSampling.Ancestral(ema.Diffusion, ema.Model, new long[] { 2, 1, Size, Size }, new SampleOptions { Seed = 4 });
        Assert.Equal(PixelFacts.Quantised(result.Samples, 0), layout.Cell(reverse, 4));
        Assert.Equal(PixelFacts.Quantised(result.Samples, 1), layout.Cell(reverse, 14));
        // The last predicted x_0 is the prediction at t = 0, where the posterior mean is 1 x x_0 + 0 x x_t (alpha_bar_prev = 1):
        // the sample itself up to float rounding, so at most one level apart.
        for (int r = 0; r < 2; r++)
        {
            var sample = layout.Cell(reverse, 10 * r + 4);
            var predicted = layout.Cell(reverse, 10 * r + 9);
            Assert.All(sample.Zip(predicted), pair => Assert.InRange(Math.Abs(pair.First - pair.Second), 0, 1));
        }
    }
}

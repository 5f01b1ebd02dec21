using Ddpm.Diffusion;
using Ddpm.Figures;
using Ddpm.Imaging;
using Ddpm.Sampling;
using Ddpm.Tests.Training;
using static TorchSharp.torch;

namespace Ddpm.Tests.Figures;

public class DiffusionFiguresTests
{
    [Fact]
    public void FrameTimestepsAreEvenlySpacedRoundedAndDistinct()
    {
        // round(i * 99 / 4) for i = 0..4: 0, 24.75, 49.5, 74.25, 99 -> 0, 25, 50 (half to even), 74, 99.
        Assert.Equal(new[] { 0, 25, 50, 74, 99 }, DiffusionFigures.FrameTimesteps(100, 5));
        // T = 3 with 5 frames: 0, 0.5, 1, 1.5, 2 -> 0, 0, 1, 2, 2: the repeats are dropped.
        Assert.Equal(new[] { 0, 1, 2 }, DiffusionFigures.FrameTimesteps(3, 5));
        Assert.Throws<DdpmException>(() => DiffusionFigures.FrameTimesteps(100, 1));
    }

    [Fact]
    public void ForwardFigureRowsAreImagesAndColumnsAreAMarkovChainAtTheFrameTimesteps()
    {
        using var scope = NewDisposeScope();
        const int n = 8, size = 24, frames = 5;
        var show = new[] { 0, 25, 50, 74, 99 }; // FrameTimesteps(100, 5), by hand above
        using var diffusion = new GaussianDiffusion(NoiseSchedule.Linear(100));
        var alphaBar = StepReplica.LinearAlphaBar(100, 1e-4, 0.02);
        // Images that 8-bit PNG stores exactly: random bytes b mapped to b / 127.5 - 1 (in float64, then rounded once, as ImageIO reads them).
        using var gen = new Generator(4, CPU);
        var images = (randint(0, 256, new long[] { n, 1, size, size }, dtype: ScalarType.Float64, generator: gen) / 127.5 - 1).to(ScalarType.Float32);

        var figure = DiffusionFigures.ForwardProcess(diffusion, images, frames, seed: 11);
        Assert.Equal(new long[] { n * frames, 1, size, size }, figure.shape);
        var grid = figure.view(n, frames, 1, size, size); // row by row: image i's frames are i * frames .. i * frames + 4
        Assert.True(grid.select(1, 0).equal(images).all().item<bool>(), "column 0 must be the data itself");

        // Column j holds x_t at t = show[j]: (x_t - sqrt(a_t) x0) / sqrt(1 - a_t) ~ N(0, 1) (eq. 4). Given the previous column
        // (x_s, s < t) the chain (eq. 2) makes (x_t - sqrt(a_t / a_s) x_s) / sqrt(1 - a_t / a_s) ~ N(0, 1) as well, which
        // independent draws of each column from q(x_t | x0) would not (their variance would be 1 - 2 a_t + a_t / a_s).
        // 4608 pixels per column: the mean is within 4 sd = 4 / sqrt(4608) = 0.059 of 0, the variance within
        // 4 sd = 4 sqrt(2 / 4608) = 0.083 of 1.
        for (int j = 1; j < frames; j++)
        {
            double at = alphaBar[show[j]];
            var xt = grid.select(1, j).to(ScalarType.Float64);
            var marginal = (xt - Math.Sqrt(at) * images.to(ScalarType.Float64)) / Math.Sqrt(1 - at);
            var (m, v) = (marginal.mean().item<double>(), marginal.var().item<double>());
            Assert.True(Math.Abs(m) < 0.059 && Math.Abs(v - 1) < 0.083, $"t = {show[j]}: residual mean {m}, variance {v}");
            if (j == 1) continue; // the previous column is the data: same as the marginal
            double ratio = at / alphaBar[show[j - 1]];
            var step = (xt - Math.Sqrt(ratio) * grid.select(1, j - 1).to(ScalarType.Float64)) / Math.Sqrt(1 - ratio);
            (m, v) = (step.mean().item<double>(), step.var().item<double>());
            Assert.True(Math.Abs(m) < 0.059 && Math.Abs(v - 1) < 0.083, $"t = {show[j - 1]} -> {show[j]}: step residual mean {m}, variance {v}");
        }

        // Drawn as documented (SaveGrid with columns = frames): n rows and 5 columns of 24-pixel tiles with 2-pixel gaps,
        // 5 * 26 + 2 = 132 wide and 8 * 26 + 2 = 210 high; the first column's tiles read back as the input images exactly.
        var png = Path.Combine(TestUtil.TempDir(), "forward.png");
        ImageIO.SaveGrid(figure, png, columns: frames);
        var read = ImageIO.LoadPng(png);
        Assert.Equal(new long[] { 1, 210, 132 }, read.shape);
        for (int i = 0; i < n; i++)
        {
            var tile = read.narrow(1, 2 + i * 26, size).narrow(2, 2, size);
            Assert.True(tile.equal(images[i]).all().item<bool>(), $"row {i}, column 0");
        }
    }

    [Fact]
    public void ReverseFigurePicksEvenlySpacedFramesFirstAndLastIncludedAndPairsEachRowWithItsPrediction()
    {
        using var scope = NewDisposeScope();
        const int n = 2;
        // Nine frames from t = 8 down to 0; frame k holds x_t = k / 10 (image 0) and k / 10 + 0.05 (image 1), pred x0 = -x_t;
        // frame 8 holds 3 and -3, which the figure clamps to [-1, 1].
        var trajectory = Enumerable.Range(0, 9).Select(k =>
        {
            float v = k == 8 ? 3f : k / 10f;
            var xt = stack(new[] { full(new long[] { 1, 2, 2 }, v), full(new long[] { 1, 2, 2 }, v + 0.05f) });
            return new TrajectoryFrame(8 - k, xt, -xt);
        }).ToList();

        // 5 frames of 9: round(i * 8 / 4) = 0, 2, 4, 6, 8.
        var figure = DiffusionFigures.ReverseProcess(trajectory, 5);
        Assert.Equal(new long[] { 2 * n * 5, 1, 2, 2 }, figure.shape);
        var values = figure.select(1, 0).select(1, 0).select(1, 0).data<float>().ToArray(); // one pixel per tile
        float[] picked = { 0f, 0.2f, 0.4f, 0.6f, 1f };
        for (int i = 0; i < n; i++)
            for (int f = 0; f < 5; f++)
            {
                float x = Math.Min(1f, picked[f] + (i == 1 && f < 4 ? 0.05f : 0f));
                Assert.Equal(x, values[(i * 2 + 0) * 5 + f], 6);  // row 2i: x_t from noise to sample
                Assert.Equal(-x, values[(i * 2 + 1) * 5 + f], 6); // row 2i + 1: the predicted x_0 at the same steps
            }
        // More frames asked than the trajectory holds: every frame once.
        Assert.Equal(2 * n * 9, DiffusionFigures.ReverseProcess(trajectory, 20).shape[0]);
    }
}

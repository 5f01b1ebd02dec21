using Ddpm.Sampling;
using Ddpm.Tests.Sampling;
using static TorchSharp.torch;

namespace Ddpm.Tests.Cli;

/// <summary>
/// Opens what <c>ddpm sample</c> writes: the grid's geometry, and each cell against the library's ancestral sampler run on
/// the checkpoint's own weights (loaded here from the files, not through DdpmPipeline) with the options the flags stand for.
/// The tiny run: 8x8 grey images, T = 12, so the grids are enlarged 2x (Trainer.GridScale: 2 for sizes up to 32).
/// </summary>
[Collection(CliOutputCollection.Name)]
public class SampleOutputTests : OneThreadTest
{
    private const int Size = 8, Scale = 2;
    private readonly TinyRun _run;
    public SampleOutputTests(TinyRun run) => _run = run;

    /// <summary>Runs <c>sample</c> on the CPU (as the expectations are computed) and returns the PNG it wrote.</summary>
    private GreyPng Sample(params string[] extra)
    {
        var grid = Path.Combine(_run.Dir, $"sample-{Guid.NewGuid():N}.png");
        var args = new[] { "sample", "-c", _run.Run, "-o", grid, "--no-progress", "--device", "cpu", "--threads", "1" }.Concat(extra).ToArray();
        var (code, _, err) = TestUtil.Cli(args);
        Assert.True(code == 0, err);
        return GreyPng.Read(grid);
    }

    /// <summary>The library's ancestral sampler over all T steps for one batch, quantised as the PNG stores it.</summary>
    private static byte[][] Expected(RunWeights w, int count, long seed, SampleOptions? options = null)
    {
        using var scope = NewDisposeScope();
        var o = (options ?? new SampleOptions()) with { Seed = seed };
        using var result = TestSampling.Ancestral(w.Diffusion, w.Model, new long[] { count, 1, Size, Size }, o);
        return Enumerable.Range(0, count).Select(i => PixelFacts.Quantised(result.Samples, i)).ToArray();
    }

    private static byte[][] Cells(GreyPng png, GridLayout layout, int count) =>
        Enumerable.Range(0, count).Select(k => layout.Cell(png, k)).ToArray();

    [Fact]
    public void ColumnsChangesTheGeometryOnlyAndEachCellIsTheLibrarysSample()
    {
        using var ema = new RunWeights(_run.Run, ema: true);
        var expected = Expected(ema, 5, seed: 11); // one batch (the default --batch-size 64 > 5): seed 11 for all five

        // Cell side 8 x 2 = 16 pixels, stride 16 + 2 = 18, plus the 2-pixel outer border:
        // --columns 0: ceil(sqrt(5)) = 3 columns, 2 rows -> 3 x 18 + 2 = 56 wide, 2 x 18 + 2 = 38 high.
        // --columns 2: 2 columns, ceil(5 / 2) = 3 rows -> 38 wide, 56 high.
        // --columns 9: min(9, 5) = 5 columns, 1 row -> 5 x 18 + 2 = 92 wide, 20 high.
        foreach (var (columns, layout) in new[] { (0, new GridLayout(3, 2, Size, Scale)), (2, new GridLayout(2, 3, Size, Scale)), (9, new GridLayout(5, 1, Size, Scale)) })
        {
            var png = Sample("-n", "5", "--seed", "11", "--columns", columns.ToString());
            Assert.Equal((layout.Width, layout.Height), columns switch { 0 => (56, 38), 2 => (38, 56), _ => (92, 20) });
            layout.CheckFrame(png, used: 5); // with 3 x 2 or 2 x 3 cells the sixth one is empty: all 255
            var cells = Cells(png, layout, 5);
            for (int k = 0; k < 5; k++) Assert.Equal(expected[k], cells[k]);
        }
        // The five images are not all one picture (else the cell comparisons above could not tell cells apart).
        Assert.Equal(5, expected.Select(Convert.ToBase64String).Distinct().Count());
    }

    [Fact]
    public void OneFilePerImageHoldsTheSameImagesAsTheGrid()
    {
        using var ema = new RunWeights(_run.Run, ema: true);
        var expected = Expected(ema, 3, seed: 2);
        var folder = Path.Combine(_run.Dir, $"each-{Guid.NewGuid():N}");
        var (code, _, err) = TestUtil.Cli("sample", "-c", _run.Run, "-n", "3", "--seed", "2", "-o", folder, "--no-progress", "--device", "cpu", "--threads", "1");
        Assert.True(code == 0, err);
        // Named sample_00000.png ... (ImageIO.SaveFolder: at least 5 digits), each 8 x 8 without enlargement.
        Assert.Equal(new[] { "sample_00000.png", "sample_00001.png", "sample_00002.png" },
            Directory.GetFiles(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        for (int k = 0; k < 3; k++)
        {
            var png = GreyPng.Read(Path.Combine(folder, $"sample_{k:D5}.png"));
            Assert.Equal((Size, Size), (png.Height, png.Width));
            Assert.Equal(expected[k], png.Pixels);
        }
    }

    [Fact]
    public void BatchSizeSplitsTheCountIntoBatchesSeededSeedPlusIndex()
    {
        // Documented (DdpmPipeline.Sample, --seed's help): batch i is drawn with seed (seed + i), so the batch size is part
        // of what fixes the images. -n 3 --batch-size 2 --seed 11: images 0-1 are a batch of 2 with seed 11, image 2 a
        // batch of 1 with seed 12.
        using var ema = new RunWeights(_run.Run, ema: true);
        var first = Expected(ema, 2, seed: 11);
        var second = Expected(ema, 1, seed: 12);
        var layout = new GridLayout(2, 2, Size, Scale); // ceil(sqrt(3)) = 2 columns, 2 rows: 2 x 18 + 2 = 38 square
        var png = Sample("-n", "3", "--seed", "11", "--batch-size", "2");
        layout.CheckFrame(png, used: 3);
        var cells = Cells(png, layout, 3);
        Assert.Equal(first[0], cells[0]);
        Assert.Equal(first[1], cells[1]);
        Assert.Equal(second[0], cells[2]);

        // One batch of three (the default --batch-size) gives other images: the noise stream is split differently.
        var oneBatch = Expected(ema, 3, seed: 11);
        Assert.NotEqual(oneBatch[2], cells[2]);
        var png64 = Sample("-n", "3", "--seed", "11");
        for (int k = 0; k < 3; k++) Assert.Equal(oneBatch[k], layout.Cell(png64, k));
    }

    [Fact]
    public void NoEmaSamplesWithTheRawWeights()
    {
        using var raw = new RunWeights(_run.Run, ema: false);
        using var ema = new RunWeights(_run.Run, ema: true);
        var expectedRaw = Expected(raw, 2, seed: 5);
        var expectedEma = Expected(ema, 2, seed: 5);
        // After two training steps with EMA warm-up the two weight sets differ, and so do their samples.
        Assert.NotEqual(expectedEma[0], expectedRaw[0]);
        var layout = new GridLayout(2, 1, Size, Scale); // ceil(sqrt(2)) = 2 columns, 1 row: 38 x 20
        var png = Sample("-n", "2", "--seed", "5", "--no-ema");
        layout.CheckFrame(png, used: 2);
        Assert.Equal(expectedRaw[0], layout.Cell(png, 0));
        Assert.Equal(expectedRaw[1], layout.Cell(png, 1));
    }

    [Fact]
    public void ThresholdFlagsReachTheSampler()
    {
        using var ema = new RunWeights(_run.Run, ema: true);
        var layout = new GridLayout(2, 1, Size, Scale);
        byte[][] Cli(params string[] flags)
        {
            var png = Sample(new[] { "-n", "2", "--seed", "9" }.Concat(flags).ToArray());
            layout.CheckFrame(png, used: 2);
            return Cells(png, layout, 2);
        }
        var clip = Expected(ema, 2, 9, new SampleOptions { Threshold = X0Threshold.Clip });
        var none = Expected(ema, 2, 9, new SampleOptions { Threshold = X0Threshold.None });
        var dynamic = Expected(ema, 2, 9, new SampleOptions { Threshold = X0Threshold.Dynamic });
        var dynamicMax = Expected(ema, 2, 9, new SampleOptions { Threshold = X0Threshold.Dynamic, DynamicThresholdMax = 1.5 });
        // The barely trained network predicts x_0 outside [-1, 1] (at t = T-1, x_0 = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar)
        // with alpha_bar about 0.89 and x_t ~ N(0, 1)), so clipping changes the samples and every comparison below can fail.
        Assert.NotEqual(clip[0], none[0]);
        Assert.NotEqual(clip[0], dynamic[0]);
        Assert.NotEqual(dynamic[0], dynamicMax[0]);

        Assert.Equal(clip, Cli());
        Assert.Equal(clip, Cli("--threshold", "clip"));
        Assert.Equal(none, Cli("--no-clip"));
        Assert.Equal(none, Cli("--threshold", "none"));
        Assert.Equal(dynamic, Cli("--threshold", "dynamic"));
        Assert.Equal(dynamicMax, Cli("--threshold", "dynamic", "--dynamic-max", "1.5"));
    }
}

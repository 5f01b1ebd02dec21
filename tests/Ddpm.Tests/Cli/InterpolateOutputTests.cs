using Ddpm.Sampling;
using Ddpm.Tests.Sampling;
using static TorchSharp.torch;

namespace Ddpm.Tests.Cli;

/// <summary>Opens the row <c>ddpm interpolate</c> writes: its geometry, its frames, its ends, and what --no-ema and --threshold change.</summary>
[Collection(CliOutputCollection.Name)]
public class InterpolateOutputTests : OneThreadTest
{
    private const int Size = 8, Scale = 2;
    // --steps 6 of T = 12, evenly spaced: round(i 11 / 5) = 0, 2.2 -> 2, 4.4 -> 4, 6.6 -> 7, 8.8 -> 9, 11.
    private static readonly int[] SixOfTwelve = { 0, 2, 4, 7, 9, 11 };
    private readonly TinyRun _run;
    public InterpolateOutputTests(TinyRun run) => _run = run;

    private byte[][] Row(params string[] extra)
    {
        var grid = Path.Combine(_run.Dir, $"interp-{Guid.NewGuid():N}.png");
        var args = new[] { "interpolate", "-c", _run.Run, "--seed-a", "5", "--seed-b", "6", "--frames", "4", "--sample-steps", "6", "-o", grid,
            "--no-progress", "--device", "cpu", "--threads", "1" }.Concat(extra).ToArray();
        var (code, _, err) = TestUtil.Cli(args);
        Assert.True(code == 0, err);
        // One row of 4 frames: 4 x (16 + 2) + 2 = 74 wide, 16 + 4 = 20 high.
        var layout = new GridLayout(4, 1, Size, Scale);
        Assert.Equal((74, 20), (layout.Width, layout.Height));
        var png = GreyPng.Read(grid);
        layout.CheckFrame(png, used: 4);
        return Enumerable.Range(0, 4).Select(k => layout.Cell(png, k)).ToArray();
    }

    private static byte[][] Expected(RunWeights w, SampleOptions options)
    {
        using var scope = NewDisposeScope();
        var ddim = new DdimSampler(options.Apply(new DdimOptions { Timesteps = SixOfTwelve }));
        using var result = Interpolation.Interpolate(w.Diffusion, w.Model, ddim, new long[] { 1, 1, Size, Size }, 5, 6, 4);
        return Enumerable.Range(0, 4).Select(i => PixelFacts.Quantised(result.Samples, i)).ToArray();
    }

    [Fact]
    public void TheRowHoldsTheSlerpFramesAndEndsInEachSeedsDdimSample()
    {
        using var ema = new RunWeights(_run.Run, ema: true);
        var row = Row();
        Assert.Equal(Expected(ema, new SampleOptions()), row);

        // The ends are what deterministic DDIM over the same six steps draws from seed 5 and seed 6 alone. The slerp's
        // ends are a and b up to float rounding (sin(theta) / sin(theta) computed in float64, cast to float32), so the
        // bytes may differ by one level where a value sits on a rounding boundary.
        using var scope = NewDisposeScope();
        foreach (var (seed, cell) in new[] { (5L, row[0]), (6L, row[3]) })
        {
            using var ddim = TestSampling.Ddim(ema.Diffusion, ema.Model, new long[] { 1, 1, Size, Size }, SixOfTwelve, 0.0, new SampleOptions { Seed = seed });
            var expected = PixelFacts.Quantised(ddim.Samples, 0);
            Assert.All(expected.Zip(cell), pair => Assert.InRange(Math.Abs(pair.First - pair.Second), 0, 1));
        }
        // The two ends are different pictures, and the middle frames are neither end.
        Assert.NotEqual(row[0], row[3]);
        Assert.NotEqual(row[0], row[1]);
        Assert.NotEqual(row[3], row[2]);
    }

    [Fact]
    public void NoEmaAndThresholdReachTheDecoder()
    {
        using var raw = new RunWeights(_run.Run, ema: false);
        using var ema = new RunWeights(_run.Run, ema: true);
        var expected = Expected(raw, new SampleOptions { Threshold = X0Threshold.None });
        Assert.NotEqual(Expected(ema, new SampleOptions { Threshold = X0Threshold.None }), expected);
        Assert.NotEqual(Expected(raw, new SampleOptions()), expected);
        Assert.Equal(expected, Row("--no-ema", "--threshold", "none"));
    }
}

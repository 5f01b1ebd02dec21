using Ddpm.Data;
using static TorchSharp.torch;

namespace Ddpm.Tests.Data;

public class AugmentTests
{
    [Fact]
    public void EachImageIsItselfOrItsMirrorAndAboutHalfAreFlipped()
    {
        const int n = 400;
        using var gen = new Generator(1234);
        using var data = new Generator(1);
        using var batch = rand(new long[] { n, 2, 3, 5 }, generator: data);
        using var before = batch.clone();
        using var output = Augment.RandomHorizontalFlip(batch, gen);

        Assert.Equal(batch.shape, output.shape);
        Assert.True(batch.allclose(before, 0, 0)); // input untouched
        var x = batch.data<float>().ToArray();
        var y = output.data<float>().ToArray();
        int flipped = 0;
        for (int i = 0; i < n; i++)
        {
            bool same = true, mirror = true;
            for (int c = 0; c < 2; c++)
                for (int r = 0; r < 3; r++)
                    for (int col = 0; col < 5; col++)
                    {
                        int o = ((i * 2 + c) * 3 + r) * 5;
                        same &= y[o + col] == x[o + col];
                        mirror &= y[o + col] == x[o + 4 - col];
                    }
            Assert.True(same ^ mirror, $"image {i} is neither itself nor its mirror (or both)");
            if (mirror) flipped++;
        }
        Assert.InRange(flipped, 160, 240); // Binomial(400, 0.5): mean 200, sd 10

        using var gen2 = new Generator(1234);
        using var again = Augment.RandomHorizontalFlip(batch, gen2);
        Assert.True(again.allclose(output, 0, 0)); // same seed, same flips
    }

    [Fact]
    public void EachImageIsItselfMovedByAWholePixelOffsetWithinRange()
    {
        const int n = 60, h = 6, w = 7, m = 2;
        using var data = new Generator(3);
        using var batch = rand(new long[] { n, 1, h, w }, generator: data);
        using var before = batch.clone();
        using var gen = new Generator(99);
        using var output = Augment.RandomShift(batch, m, gen, fill: -1.0);
        Assert.Equal(batch.shape, output.shape);
        Assert.True(batch.allclose(before, 0, 0));
        var x = batch.data<float>().ToArray();
        var y = output.data<float>().ToArray();
        var seen = new HashSet<(int, int)>();
        for (int i = 0; i < n; i++)
        {
            // Find the offset (dy, dx) that explains the output: y[r, c] = x[r - dy, c - dx] inside, -1 outside.
            var fits = new List<(int, int)>();
            for (int dy = -m; dy <= m; dy++)
                for (int dx = -m; dx <= m; dx++)
                {
                    bool ok = true;
                    for (int r = 0; r < h && ok; r++)
                        for (int c = 0; c < w && ok; c++)
                        {
                            int sr = r - dy, sc = c - dx;
                            float expected = sr >= 0 && sr < h && sc >= 0 && sc < w ? x[(i * h + sr) * w + sc] : -1f;
                            ok = y[(i * h + r) * w + c] == expected;
                        }
                    if (ok) fits.Add((dy, dx));
                }
            Assert.Single(fits);
            seen.Add(fits[0]);
        }
        Assert.True(seen.Count >= 15, $"only {seen.Count} of the 25 offsets in 60 draws"); // all 25 are equally likely

        using var gen2 = new Generator(99);
        using var again = Augment.RandomShift(batch, m, gen2);
        Assert.True(again.allclose(output, 0, 0)); // same seed, same shifts
    }
}

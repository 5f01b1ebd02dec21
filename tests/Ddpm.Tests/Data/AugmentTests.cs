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
}

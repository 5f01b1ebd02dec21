using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

/// <summary>
/// Which orientation of each image the network saw, read off the trainer's reported loss: the replica computes the loss of
/// every image as itself, mirrored left-right and mirrored top-bottom, and exactly one of the 3^B assignments may match.
/// </summary>
public class TrainerFlipTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TheModelSeesExactlyTheImagesTheSeededCoinFlipsAndNeverUpsideDown(bool flips)
    {
        using var scope = NewDisposeScope();
        using var data = TestUtil.TinyData();
        var c = TestUtil.TinyConfig(steps: 3);
        c.Model!.Dropout = 0;
        c.RandomFlip = flips;
        using var t = Trainer.Start(c, Path.Combine(TestUtil.TempDir(), "run"), data);
        StepReplica.Perturb(t.Model, seed: 2); // a non-zero output, so that the loss depends on the image's orientation
        int b = c.BatchSize, coinsUp = 0;
        for (long step = 0; step < 3; step++)
        {
            using var stepScope = NewDisposeScope();
            using var replica = new StepReplica(t.Config, data, step);
            using var clone = StepReplica.Clone(t.Model);
            // losses[o][i]: image i's loss in orientation o (0 itself, 1 left-right, 2 top-bottom), same t and noise.
            double[][] losses;
            using (no_grad())
                losses = Enumerable.Range(0, 3).Select(o =>
                    replica.PerExampleLoss(clone, replica.Oriented(Enumerable.Repeat(o, b).ToArray())).to(ScalarType.Float64).data<double>().ToArray()).ToArray();
            double reported = t.TrainStep().Loss;

            // The loss of every assignment of orientations to the B images; the trainer's must match exactly one.
            var matches = new List<int[]>();
            double nearestOther = double.PositiveInfinity;
            // The trainer reports a float32 loss (ulp 1.2e-7 relative) of the same float32 network on inputs the replica forms
            // with the same float32 coefficients: they agree to about one ulp, so 4 ulps.
            double tol = 5e-7 * reported;
            for (int code = 0; code < (int)Math.Pow(3, b); code++)
            {
                var o = new int[b];
                for (int i = 0, rest = code; i < b; i++, rest /= 3) o[i] = rest % 3;
                double mean = Enumerable.Range(0, b).Average(i => losses[o[i]][i]);
                if (Math.Abs(mean - reported) < tol) matches.Add(o);
                else nearestOther = Math.Min(nearestOther, Math.Abs(mean - reported));
            }
            var coin = replica.Coins.Select(x => x ? 1 : 0).ToArray();
            Assert.Single(matches);
            Assert.True(coin.SequenceEqual(matches[0]), $"step {step}: coin {string.Join(",", coin)}, seen {string.Join(",", matches[0])}");
            Assert.True(nearestOther > 10 * tol, $"step {step}: another assignment is within {nearestOther} of the loss");
            coinsUp += replica.Coins.Count(x => x);
        }
        // With flips on, the seeded coins of these 12 images include both faces (else the test could not tell); off, none.
        if (flips) Assert.InRange(coinsUp, 1, 3 * b - 1);
        else Assert.Equal(0, coinsUp);
    }
}

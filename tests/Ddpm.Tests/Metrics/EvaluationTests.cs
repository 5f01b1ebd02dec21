using Ddpm.Data;
using Ddpm.Imaging;
using Ddpm.Metrics;
using Ddpm.Metrics.Evaluation;
using Ddpm.Pipelines;
using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Tests.Metrics;

/// <summary>
/// A transparent extractor: features are (mean, std, max) of the quantised pixels, logits (mean, -mean, 0) —
/// simple enough that every expected value can be computed independently in the test.
/// </summary>
internal sealed class PixelStatsExtractor : IFeatureExtractor
{
    public string Name => "test/pixel-stats";
    public int FeatureDims => 3;
    public int Classes => 3;
    public Device Device => CPU;
    public int Calls { get; private set; }

    public FeatureBatch Extract(Tensor images)
    {
        Calls++;
        using var scope = NewDisposeScope();
        var q = ImageIO.Quantize(images).to(ScalarType.Float32).div(255.0).flatten(1);
        var mean = q.mean(new long[] { 1 });
        var features = stack(new[] { mean, q.std(1), q.amax(new long[] { 1 }) }, 1);
        var logits = stack(new[] { mean, -mean, zeros_like(mean) }, 1);
        return new FeatureBatch(features.MoveToOuterDisposeScope(), logits.MoveToOuterDisposeScope());
    }

    public void Dispose() { }
}

public class EvaluationTests
{
    private static ImageDataset Images(int count, double offset, long seed, int size = 6)
    {
        using var gen = new Generator((ulong)seed, CPU);
        var x = (rand(new long[] { count, 1, size, size }, generator: gen) * 1.2 - 0.6 + offset).clamp(-1, 1);
        return new ImageDataset(x, null, $"synthetic{seed}");
    }

    [Fact]
    public void FeaturesDoNotDependOnTheBatchSize()
    {
        using var ex = new PixelStatsExtractor();
        using var src = ImageSource.FromDataset(Images(23, 0, 1), "a");
        using var whole = FeatureCollector.Collect(ex, src, 23);
        int calls = ex.Calls;
        using var parts = FeatureCollector.Collect(ex, src, 5);
        Assert.Equal(5, ex.Calls - calls); // 5 + 5 + 5 + 5 + 3
        Assert.Equal(new long[] { 23, 3 }, parts.Features.shape);
        Assert.True(whole.Features.allclose(parts.Features));
        Assert.True(whole.Logits!.allclose(parts.Logits!));
    }

    [Fact]
    public void DistanceOfASetToItselfIsZeroAndToItsNpzStatisticsToo()
    {
        var dir = TestUtil.TempDir();
        using var ex = new PixelStatsExtractor();
        using var a = ImageSource.FromDataset(Images(40, 0, 2), "a");
        using var b = ImageSource.FromDataset(Images(40, 0, 2), "b");
        var self = DistanceEvaluation.Run(ex, a, b, new DistanceOptions());
        Assert.True(Math.Abs(self.Distance) < 1e-9, $"{self.Distance}");
        Assert.Equal(40, self.A.Count);

        using (var f = FeatureCollector.Collect(ex, a, 16)) f.Statistics().SaveNpz(Path.Combine(dir, "a.npz"));
        using var npz = ImageSource.Open(Path.Combine(dir, "a.npz"));
        Assert.Equal(ImageSourceKind.Statistics, npz.Kind);
        var viaNpz = DistanceEvaluation.Run(ex, b, npz, new DistanceOptions());
        Assert.True(Math.Abs(viaNpz.Distance) < 1e-9, $"{viaNpz.Distance}");
    }

    [Fact]
    public void DistanceIsSymmetricAndEqualsTheFrechetDistanceOfTheFeatures()
    {
        using var ex = new PixelStatsExtractor();
        using var a = ImageSource.FromDataset(Images(50, 0, 3), "a");
        using var b = ImageSource.FromDataset(Images(60, 0.3, 4), "b");
        var ab = DistanceEvaluation.Run(ex, a, b, new DistanceOptions());
        var ba = DistanceEvaluation.Run(ex, b, a, new DistanceOptions());
        Assert.Equal(ab.Distance, ba.Distance, 9);
        using var fa = FeatureCollector.Collect(ex, a, 50);
        using var fb = FeatureCollector.Collect(ex, b, 60);
        Assert.Equal(FrechetDistance.Compute(fa.Statistics(), fb.Statistics()), ab.Distance, 12);
        Assert.True(ab.Distance > 0.01, $"a shift of 0.3 must show: {ab.Distance}");
        Assert.Equal(3, ab.Dims);
        Assert.Equal("test/pixel-stats", ab.Extractor);
    }

    [Fact]
    public void FloorFromDisjointRealSetsIsFarBelowTheDistanceToAShiftedSet()
    {
        using var ex = new PixelStatsExtractor();
        using var fake = ImageSource.FromDataset(Images(100, 0.25, 5), "fake");
        using var real = ImageSource.FromDataset(Images(400, 0, 6), "real");
        var r = DistanceEvaluation.Run(ex, fake, real, new DistanceOptions { Floor = true, Seed = 3 });
        Assert.NotNull(r.Floor);
        Assert.Equal(100, r.Floor!.Count);
        Assert.Equal("real", r.Floor.Data);
        Assert.True(r.Floor.Distance >= 0 && r.Floor.Distance < r.Distance / 10, $"floor {r.Floor.Distance} vs {r.Distance}");

        using var small = ImageSource.FromDataset(Images(150, 0, 7), "small");
        var none = DistanceEvaluation.Run(ex, fake, small, new DistanceOptions { Floor = true });
        Assert.Null(none.Floor);
        Assert.Contains("200", none.FloorUnavailable);
    }

    [Fact]
    public void KidAndScoresAreReportedWhenAskedFor()
    {
        using var ex = new PixelStatsExtractor();
        using var a = ImageSource.FromDataset(Images(30, 0, 8), "a");
        using var b = ImageSource.FromDataset(Images(30, 0.4, 9), "b");
        var r = DistanceEvaluation.Run(ex, a, b, new DistanceOptions { Kid = true, KidSubsets = 5, ClassScores = true, Splits = 3 });
        Assert.NotNull(r.Kid);
        Assert.True(r.Kid!.Value.Mean > 0);
        Assert.NotNull(r.A.Score);
        Assert.Equal(30, r.A.ClassCounts!.Sum());
        // mean pixel > 0 for every image of b (offset 0.4 in [-1, 1] => mean in [0, 1] well above 0): all class 0
        Assert.Equal(30, r.B.ClassCounts![0]);
        // A (offset 0) splits between classes 0 and 1; the histogram distance is the share of A outside class 0.
        Assert.Equal(1.0 - r.A.ClassCounts![0] / 30.0, r.ClassHistogramDistance!.Value, 12);
        Assert.Contains("\"kid\"", r.ToJson());
    }

    [Fact]
    public void OpeningSourcesByPath()
    {
        var dir = TestUtil.TempDir();
        Assert.Throws<DdpmException>(() => ImageSource.Open(Path.Combine(dir, "missing")));
        Assert.Throws<DdpmException>(() => ImageSource.Open(Path.Combine(dir, "missing.npz")));

        using (var data = Images(7, 0, 10, size: 8))
        {
            Idx.WriteImages(Path.Combine(dir, "x-images-idx3-ubyte"), data.Images, gzip: false);
        }
        using (var src = ImageSource.Open(Path.Combine(dir, "x-images-idx3-ubyte"), new ImageSourceOptions { Count = 5 }))
        {
            Assert.Equal(ImageSourceKind.Images, src.Kind);
            Assert.Equal(5, src.Count);
        }

        using (var t = Trainer.Start(TestUtil.TinyConfig(steps: 2), Path.Combine(dir, "run"), TestUtil.TinyData()))
            t.Run();
        var err = Assert.Throws<DdpmException>(() => ImageSource.Open(Path.Combine(dir, "run")));
        Assert.Contains("give count", err.Message);
        using var ckpt = (CheckpointSource)ImageSource.Open(Path.Combine(dir, "run"),
            new ImageSourceOptions { Count = 5, Seed = 4, SampleBatchSize = 3 });
        Assert.Equal(ImageSourceKind.Checkpoint, ckpt.Kind);
        var batches = ckpt.Batches(2, null, default).ToList();
        Assert.Equal(new long[] { 2, 1, 2 }, batches.Select(b => b.shape[0]).ToArray()); // cut at the 3-image sample batches
        using var got = cat(batches, 0);
        foreach (var b in batches) b.Dispose();
        using var expected = ckpt.Pipeline.Sample(5, seed: 4, batchSize: 3);
        Assert.True(got.allclose(expected), "the same seed and sample batch size give the images of ddpm sample");
    }
}

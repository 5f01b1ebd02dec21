using Ddpm.Metrics.Evaluation;
using Ddpm.Data;
using Ddpm.Metrics;
using Ddpm.Metrics.Classifier;
using static TorchSharp.torch;

namespace Ddpm.Tests.Metrics;

/// <summary>
/// The classifiers built into the library: their held-out accuracy (and that their metadata states it truthfully), and
/// that their Frechet distance separates real from unreal images.
/// </summary>
public class ClassifierShippedTests
{
    public static string MnistPath => Path.Combine(TestUtil.RepoRoot(), "data", "mnist-10k", "images-idx3-ubyte.gz");

    public static string FashionTestPath =>
        Path.Combine(TestUtil.RepoRoot(), "data", "fashion-mnist-2k", "t10k-images-idx3-ubyte.gz");

    /// <summary>
    /// Images [start, start + count) of a bundled IDX pair, classified by the shipped network: pixels b / 127.5 - 1 as
    /// the network takes them, the arg max of each row of logits counted against the IDX label, and the smallest gap
    /// between the top two logits (how far the count is from a borderline image).
    /// </summary>
    private static (int Correct, double SmallestMargin) Recount(string name, string imagesPath, string labelsPath, int start, int count)
    {
        // The IDX bytes as stored (read here, not by the library's loader).
        var (pixels, dims) = Ddpm.Tests.Data.IdxBytes.Read(imagesPath);
        var (labels, labelDims) = Ddpm.Tests.Data.IdxBytes.Read(labelsPath);
        Assert.Equal(3, dims.Length);
        Assert.Equal(dims[0], labelDims[0]);
        Assert.True(start + count <= dims[0], $"{imagesPath} holds {dims[0]} images");
        int size = dims[1] * dims[2];
        var x = new float[count * size];
        for (int i = 0; i < x.Length; i++) x[i] = pixels[start * size + i] / 127.5f - 1f;
        var loaded = ClassifierStore.Load(name);
        using var net = loaded.Net;
        net.eval();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var logits = net.call(tensor(x).view(count, 1, dims[1], dims[2])).data<float>().ToArray();
        int k = logits.Length / count, correct = 0;
        double margin = double.PositiveInfinity;
        for (int i = 0; i < count; i++)
        {
            var row = logits.AsSpan(i * k, k).ToArray();
            int best = Array.IndexOf(row, row.Max());
            var sorted = row.OrderDescending().ToArray();
            margin = Math.Min(margin, sorted[0] - sorted[1]);
            if (best == labels[start + i]) correct++;
        }
        return (correct, margin);
    }

    public static string MnistLabelsPath => Path.Combine(TestUtil.RepoRoot(), "data", "mnist-10k", "labels-idx1-ubyte.gz");
    public static string FashionLabelsPath => Path.Combine(TestUtil.RepoRoot(), "data", "fashion-mnist-2k", "t10k-labels-idx1-ubyte.gz");

    [Fact]
    public void MnistClassifierReachesItsStatedHeldOutAccuracy()
    {
        using var loaded = ClassifierFeatureExtractor.Load("mnist");
        var info = loaded.Info;
        Assert.Equal("mnist", info.Dataset);
        Assert.Equal("last 1000 of data/mnist-10k", info.HeldOutData);
        Assert.Equal(1000, info.HeldOutImages);
        Assert.Equal(9000, info.TrainImages);
        // The metadata's held-out split is the last 1,000 of the bundled 10,000: recount it here. Accuracy is a count
        // over 1,000 images, so the stated figure must be exactly correct / 1000.
        var (correct, margin) = Recount("mnist", MnistPath, MnistLabelsPath, 9000, 1000);
        Assert.True(margin > 1e-4, $"an image within {margin:G3} of a tie: the count could depend on the thread count");
        Assert.Equal(info.HeldOutAccuracy, correct / 1000.0);

        // The library's evaluation agrees with the recount, and every class is learned.
        using var all = DatasetLoader.Load(MnistPath);
        var (train, test) = ClassifierTrainer.SplitLast(all, 1000);
        train.Dispose();
        using (test)
        {
            var result = Evaluate("mnist", test);
            Assert.Equal(correct, result.Correct);
            for (int k = 0; k < 10; k++) Assert.True(result.ClassAccuracy(k) > 0.95, $"class {k}: {result.ClassAccuracy(k):P1}");
        }
    }

    [Fact]
    public void FashionClassifierReachesItsAccuracyOnTestImages()
    {
        Assert.True(File.Exists(FashionTestPath), $"Fashion-MNIST test images not found at {FashionTestPath}");
        using var loaded = ClassifierFeatureExtractor.Load("fashion-mnist");
        Assert.Equal(10000, loaded.Info.HeldOutImages);
        Assert.Equal("Ankle boot", loaded.Info.ClassNames[9]);
        // The stated accuracy is over all 10,000 held-out images, which are not bundled (only their first 2,000 are, in
        // data/fashion-mnist-2k), so it cannot be recounted exactly here. The 2,000 are a draw without replacement from
        // the 10,000 (shuffled): correct / 2000 has mean p = 0.9184 and sd sqrt(p (1 - p) / 2000 * 8000 / 9999) = 0.00548;
        // 4 sd = 0.0219.
        var (correct, _) = Recount("fashion-mnist", FashionTestPath, FashionLabelsPath, 0, 2000);
        Assert.InRange(correct / 2000.0, loaded.Info.HeldOutAccuracy - 0.0219, loaded.Info.HeldOutAccuracy + 0.0219);
    }

    private static ClassifierEvaluation Evaluate(string name, ImageDataset data)
    {
        var loaded = ClassifierStore.Load(name);
        using var net = loaded.Net;
        return ClassifierTrainer.Evaluate(net, data);
    }

    [Fact]
    public void DistanceBetweenDisjointRealSetsIsSmallAndRealVersusNoiseIsLarge()
    {
        using var extractor = ClassifierFeatureExtractor.Load("mnist");
        Assert.Equal("classifier/mnist", extractor.Name);
        Assert.Equal("FD_classifier(mnist)", extractor.DistanceName);
        using var digits = DatasetLoader.Load(MnistPath, maxCount: 1000);
        using var scope = NewDisposeScope();
        var real = FeatureExtraction.ExtractAll(extractor, digits.Images).Features;
        Assert.Equal(new long[] { 1000, extractor.FeatureDims }, real.shape);

        double floor = DomainScores.RealFloor(real, 500, seed: 0);
        using var gen = new Generator(4);
        var noise = rand(new long[] { 500, 1, 28, 28 }, generator: gen) * 2 - 1;
        var noiseStats = FeatureStatistics.FromFeatures(FeatureExtraction.ExtractAll(extractor, noise).Features);
        var realStats = FeatureStatistics.FromFeatures(real.narrow(0, 0, 500));
        double toNoise = FrechetDistance.Compute(realStats, noiseStats);
        Assert.True(floor > 0, $"floor {floor}");
        Assert.True(toNoise > 10 * floor, $"real vs noise {toNoise:G4}, real vs real {floor:G4}");

        // Another domain (Fashion-MNIST garments) is also far from the digits.
        using var garments = DatasetLoader.Load(FashionTestPath, maxCount: 500);
        var garmentStats = FeatureStatistics.FromFeatures(FeatureExtraction.ExtractAll(extractor, garments.Images).Features);
        double toGarments = FrechetDistance.Compute(realStats, garmentStats);
        Assert.True(toGarments > 10 * floor, $"digits vs garments {toGarments:G4}, real vs real {floor:G4}");
    }

    [Fact]
    public void DistanceEvaluationScoresRealImagesNearTheFloorAndNoiseFarFromIt()
    {
        using var extractor = ClassifierFeatureExtractor.Load("mnist");
        using var digits = DatasetLoader.Load(MnistPath, maxCount: 1200);
        using var scope = NewDisposeScope();
        // "Samples" that are real digits outside the real pool (the last 300) score about like the floor.
        using var samples = ImageSource.FromTensor(digits.Images.narrow(0, 900, 300), "held-out digits");
        using var pool = ImageSource.FromTensor(digits.Images.narrow(0, 0, 900), "pool");
        var options = new DistanceOptions { Metric = "fd_classifier", ClassScores = true, Floor = true, Seed = 1 };
        var report = DistanceEvaluation.Run(extractor, samples, pool, options);
        Assert.Equal(300, report.Floor!.Count);
        Assert.InRange(report.Distance, 0.3 * report.Floor.Distance, 3 * report.Floor.Distance);
        Assert.True(report.A.Score!.Value.Mean > 7, $"IS analogue of real digits {report.A.Score.Value.Mean}");
        // Two sets of real digits: the histograms differ only by sampling noise (expected TV about 0.1).
        double tvReal = report.ClassHistogramDistance!.Value;
        Assert.True(tvReal < 0.2, $"TV between real histograms {tvReal}");

        using var gen = new Generator(8);
        using var noise = ImageSource.FromTensor(rand(new long[] { 300, 1, 28, 28 }, generator: gen) * 2 - 1, "noise");
        var bad = DistanceEvaluation.Run(extractor, noise, pool, options);
        Assert.Equal(report.Floor.Distance, bad.Floor!.Distance, 9); // same real subsets
        Assert.True(bad.Distance > 10 * bad.Floor.Distance);
        Assert.True(bad.A.Score!.Value.Mean < report.A.Score.Value.Mean);
        Assert.True(bad.ClassHistogramDistance > 2 * tvReal, $"TV noise vs real {bad.ClassHistogramDistance}, real vs real {tvReal}");
    }
}

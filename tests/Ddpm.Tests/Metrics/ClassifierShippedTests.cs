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

    /// <summary>The bundled digits' held-out split: the last 1,000 of the 10,000 (the shipped MNIST classifier never saw them).</summary>
    private static ImageDataset MnistHeldOut()
    {
        using var all = DatasetLoader.Load(MnistPath);
        var (train, test) = ClassifierTrainer.SplitLast(all, 1000);
        train.Dispose();
        return test;
    }

    [Fact]
    public void MnistClassifierReachesItsStatedHeldOutAccuracy()
    {
        using var loaded = ClassifierFeatureExtractor.Load("mnist");
        using var test = MnistHeldOut();
        var info = loaded.Info;
        Assert.Equal("mnist", info.Dataset);
        Assert.Equal(1000, info.HeldOutImages);
        Assert.Equal(9000, info.TrainImages);
        var result = Evaluate("mnist", test);
        Assert.True(result.Accuracy >= 0.985, $"held-out accuracy {result.Accuracy:P2}");
        // The metadata's figure is this measurement (up to a borderline image on another thread count).
        Assert.InRange(result.Accuracy, info.HeldOutAccuracy - 0.002, info.HeldOutAccuracy + 0.002);
        for (int k = 0; k < 10; k++) Assert.True(result.ClassAccuracy(k) > 0.95, $"class {k}: {result.ClassAccuracy(k):P1}");
    }

    [Fact]
    public void FashionClassifierReachesItsAccuracyOnTestImages()
    {
        Assert.True(File.Exists(FashionTestPath), $"Fashion-MNIST test images not found at {FashionTestPath}");
        using var test = DatasetLoader.Load(FashionTestPath, maxCount: 2000);
        var result = Evaluate("fashion-mnist", test);
        using var loaded = ClassifierFeatureExtractor.Load("fashion-mnist");
        Assert.Equal(10000, loaded.Info.HeldOutImages);
        Assert.Equal("Ankle boot", loaded.Info.ClassNames[9]);
        Assert.True(result.Accuracy >= 0.88, $"accuracy on 2,000 test images {result.Accuracy:P2}");
        // 2,000 of the 10,000 held-out images: within a few points of the stated whole-set accuracy.
        Assert.InRange(result.Accuracy, loaded.Info.HeldOutAccuracy - 0.025, loaded.Info.HeldOutAccuracy + 0.025);
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

using Ddpm.Cli;
using Ddpm.Data;
using Ddpm.Metrics;
using Ddpm.Metrics.Classifier;
using Ddpm.Metrics.Evaluation;
using static TorchSharp.torch;

namespace Ddpm.Tests.Metrics;

/// <summary>Training determinism, the weights files and their errors, the preprocessing, and the CLI of the offline classifier.</summary>
public class ClassifierTrainingTests
{
    private static ImageDataset Digits(int count) => DatasetLoader.Load(ClassifierShippedTests.MnistPath, maxCount: count);

    private static readonly ClassifierTrainOptions Tiny = new() { Epochs = 1, BatchSize = 32, LearningRate = 2e-3, Seed = 3 };

    private static Dictionary<string, Tensor> State(ClassifierNet net) =>
        net.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());

    [Fact]
    public void SameSeedGivesIdenticalWeightsAndAnotherSeedDifferentOnes()
    {
        using var data = Digits(128);
        using var scope = NewDisposeScope();
        Dictionary<string, Tensor> Run(long seed)
        {
            var o = new ClassifierTrainOptions { Epochs = Tiny.Epochs, BatchSize = Tiny.BatchSize, LearningRate = Tiny.LearningRate, Seed = seed };
            using var net = ClassifierTrainer.Train(data, o);
            return State(net);
        }
        var a = Run(3);
        var b = Run(3);
        var c = Run(4);
        Assert.Equal(a.Keys.OrderBy(k => k), b.Keys.OrderBy(k => k));
        // Every tensor of the state dict, batch-norm statistics included, bit for bit.
        foreach (var (k, v) in a) Assert.True(v.equal(b[k]).all().item<bool>(), $"{k} differs between two runs with the same seed");
        Assert.Contains(a, kv => !kv.Value.allclose(c[kv.Key]));
        Assert.Contains("bn1.running_mean", a.Keys);
        Assert.Contains("fc2.weight", a.Keys);
    }

    [Fact]
    public void SavedWeightsLoadBackToTheSameFeaturesWithTheirMetadata()
    {
        var dir = TestUtil.TempDir();
        using var data = Digits(96);
        using var net = ClassifierTrainer.Train(data, Tiny);
        var info = new ClassifierInfo { Dataset = "tiny", ClassNames = Enumerable.Range(0, 10).Select(i => $"c{i}").ToArray(), Architecture = net.Architecture, Training = Tiny, Command = "test" };
        var path = Path.Combine(dir, "tiny.safetensors");
        ClassifierStore.Save(net, info, path);
        Assert.True(File.Exists(Path.Combine(dir, "tiny.json")));
        Assert.Empty(Directory.GetFiles(dir, "*.tmp"));
        Assert.True(new FileInfo(path).Length < 1_500_000);

        using var extractor = ClassifierFeatureExtractor.Load(path);
        Assert.Equal("classifier/tiny", extractor.Name);
        Assert.Equal("FD_classifier(tiny)", extractor.DistanceName);
        Assert.Equal(128, extractor.FeatureDims);
        Assert.Equal(10, extractor.Classes);
        Assert.Equal("c9", extractor.Info.ClassNames[9]);
        Assert.Equal(ClassifierStore.Sha256(File.ReadAllBytes(path)), extractor.Info.WeightsSha256);
        using var scope = NewDisposeScope();
        var images = data.Images.narrow(0, 0, 20);
        var got = extractor.Extract(images);
        using var _ = no_grad();
        var x = ClassifierFeatureExtractor.Preprocess(images);
        var expectedFeatures = net.Features(x);
        Assert.True(got.Features.allclose(expectedFeatures, 0, 0));
        Assert.True(got.Logits!.allclose(net.Head(expectedFeatures), 0, 0));
        Assert.Equal(ScalarType.Float32, got.Features.dtype);
        Assert.Equal(new long[] { 20, 10 }, got.Logits.shape);
    }

    [Fact]
    public void BatchSizeDoesNotChangeTheFeatures()
    {
        using var extractor = ClassifierFeatureExtractor.Load("mnist");
        using var data = Digits(50);
        using var scope = NewDisposeScope();
        var a = FeatureExtraction.ExtractAll(extractor, data.Images, batchSize: 7);
        var b = FeatureExtraction.ExtractAll(extractor, data.Images, batchSize: 50);
        Assert.Equal(new long[] { 50, 128 }, a.Features.shape);
        Assert.True(a.Features.allclose(b.Features, rtol: 1e-5, atol: 1e-5));
        Assert.True(a.Logits!.allclose(b.Logits!, rtol: 1e-5, atol: 1e-5));
    }

    [Fact]
    public void BadWeightFilesGiveOneLineErrorsNamingTheFile()
    {
        var dir = TestUtil.TempDir();
        static void OneLine(DdpmException e) => Assert.DoesNotContain('\n', e.Message);

        var missing = Path.Combine(dir, "none.safetensors");
        var e1 = Assert.Throws<DdpmException>(() => ClassifierStore.Load(missing));
        Assert.Contains(missing, e1.Message);
        Assert.Contains("fashion-mnist", e1.Message); // names the built-in choices
        OneLine(e1);

        // A good pair to corrupt.
        using (var data = Digits(64))
        using (var net = ClassifierTrainer.Train(data, Tiny))
            ClassifierStore.Save(net, new ClassifierInfo { Dataset = "t", ClassNames = Enumerable.Range(0, 10).Select(i => $"{i}").ToArray(), Architecture = net.Architecture }, Path.Combine(dir, "good.safetensors"));
        var good = Path.Combine(dir, "good.safetensors");
        var goodJson = File.ReadAllText(Path.Combine(dir, "good.json"));

        var noJson = Path.Combine(dir, "nojson.safetensors");
        File.Copy(good, noJson);
        var e2 = Assert.Throws<DdpmException>(() => ClassifierStore.Load(noJson));
        Assert.Contains("nojson.json", e2.Message);
        OneLine(e2);

        var flipped = Path.Combine(dir, "flipped.safetensors");
        var bytes = File.ReadAllBytes(good);
        bytes[^5] ^= 0x40;
        File.WriteAllBytes(flipped, bytes);
        File.WriteAllText(Path.Combine(dir, "flipped.json"), goodJson);
        var e3 = Assert.Throws<DdpmException>(() => ClassifierStore.Load(flipped));
        Assert.Contains("do not match", e3.Message);
        Assert.Contains("flipped.safetensors", e3.Message);
        OneLine(e3);

        // Garbage whose hash the metadata agrees with: the safetensors reader itself fails.
        var garbage = Path.Combine(dir, "garbage.safetensors");
        var junk = new byte[] { 200, 0, 0, 0, 0, 0, 0, 0, (byte)'{', (byte)'x' };
        File.WriteAllBytes(garbage, junk);
        File.WriteAllText(Path.Combine(dir, "garbage.json"), goodJson.Replace(ClassifierInfoSha(goodJson), ClassifierStore.Sha256(junk)));
        var e4 = Assert.Throws<DdpmException>(() => ClassifierStore.Load(garbage));
        Assert.Contains("garbage.safetensors", e4.Message);
        OneLine(e4);

        var badFormat = Path.Combine(dir, "format.safetensors");
        File.Copy(good, badFormat);
        File.WriteAllText(Path.Combine(dir, "format.json"), goodJson.Replace(ClassifierInfo.FormatName, "something-else/9"));
        var e5 = Assert.Throws<DdpmException>(() => ClassifierStore.Load(badFormat));
        Assert.Contains("something-else/9", e5.Message);
        OneLine(e5);

        var notJson = Path.Combine(dir, "notjson.safetensors");
        File.Copy(good, notJson);
        File.WriteAllText(Path.Combine(dir, "notjson.json"), "{ not json");
        var e6 = Assert.Throws<DdpmException>(() => ClassifierStore.Load(notJson));
        Assert.Contains("notjson.json", e6.Message);
        OneLine(e6);
    }

    private static string ClassifierInfoSha(string json) => ClassifierInfo.FromJson(json, "x").WeightsSha256;

    [Fact]
    public void PreprocessingQuantisesConvertsToGreyAndResizes()
    {
        using var scope = NewDisposeScope();
        using var data = Digits(4);
        var grey = data.Images;
        // Dequantised bytes pass through unchanged; an offset below half a level (1/255 of the range) rounds away.
        Assert.True(ClassifierFeatureExtractor.Preprocess(grey).allclose(grey, 0, 1e-6));
        Assert.True(ClassifierFeatureExtractor.Preprocess((grey + 0.003).clamp(-1, 1)).allclose(grey, 0, 1e-6));
        // Three equal channels are the grey image; pure red is 0.299 x 255 = 76.245 on the 0-255 scale.
        Assert.True(ClassifierFeatureExtractor.Preprocess(grey.expand(-1, 3, -1, -1)).allclose(grey, 0, 1e-6));
        var red = cat(new[] { ones(1, 1, 28, 28), -ones(1, 1, 28, 28), -ones(1, 1, 28, 28) }, 1);
        var r = ClassifierFeatureExtractor.Preprocess(red);
        Assert.Equal(new long[] { 1, 1, 28, 28 }, r.shape);
        Assert.Equal(76.245 / 127.5 - 1, r.mean().item<float>(), 5);
        // A 2x nearest-neighbour enlargement comes back exactly: bilinear at half-pixel centres averages equal pixels.
        var big = grey.repeat_interleave(2, 2).repeat_interleave(2, 3);
        Assert.Equal(new long[] { 4, 1, 56, 56 }, big.shape);
        Assert.True(ClassifierFeatureExtractor.Preprocess(big).allclose(grey, 0, 1e-5));
        Assert.Throws<DdpmException>(() => ClassifierFeatureExtractor.Preprocess(zeros(2, 2, 28, 28)));
    }

    private static (int Code, string Out, string Err) Cli(params string[] args) => TestUtil.Cli(args);

    [Fact]
    public void CliTrainsWritesBothFilesAndEvaluatesThem()
    {
        var dir = TestUtil.TempDir();
        // 200 labelled digits as their own IDX pair, so that eval --last 100 sees the images train --holdout 100 held out.
        var images = Path.Combine(dir, "images-idx3-ubyte");
        using (var digits = Digits(200))
        {
            Idx.WriteImages(images, digits.Images, gzip: false);
            Idx.WriteLabels(Path.Combine(dir, "labels-idx1-ubyte"), digits.Labels!, gzip: false);
        }
        var output = Path.Combine(dir, "clf.safetensors");
        var (code, stdout, err) = Cli("classifier", "train", "--data", images, "--holdout", "100", "--output", output,
            "--name", "digits", "--epochs", "2", "--batch-size", "50", "--no-progress");
        Assert.True(code == 0, err);
        Assert.Contains("held-out accuracy", stdout);
        var info = ClassifierInfo.FromJson(File.ReadAllText(Path.Combine(dir, "clf.json")), "clf.json");
        Assert.Equal("digits", info.Dataset);
        Assert.Equal(100, info.TrainImages);
        Assert.Equal(100, info.HeldOutImages);
        Assert.Contains("--holdout 100", info.Command);
        Assert.Contains("--epochs 2", info.Command);

        (code, stdout, err) = Cli("classifier", "eval", "--classifier", output, "--data", images, "--last", "100");
        Assert.True(code == 0, err);
        Assert.Contains("classifier/digits", stdout);
        // The eval of the held-out images repeats the accuracy the training run stored.
        Assert.Contains($"accuracy: {info.HeldOutAccuracy.ToString("P2", System.Globalization.CultureInfo.InvariantCulture)}", stdout);
    }

    [Fact]
    public void CliEvalOfTheBuiltInClassifierPrintsAccuracyHistogramAndFloor()
    {
        var (code, stdout, err) = Cli("classifier", "eval", "--classifier", "mnist", "--data", ClassifierShippedTests.MnistPath, "--last", "1000", "--floor", "400");
        Assert.True(code == 0, err);
        Assert.Contains("accuracy: 9", stdout);
        Assert.Contains("predicted classes:", stdout);
        Assert.Contains("IS_classifier(mnist)", stdout);
        Assert.Contains("FD_classifier(mnist) floor", stdout);
    }

    [Fact]
    public void CliErrorsAreOneLine()
    {
        var (code, _, err) = Cli("classifier", "eval", "--classifier", "/no/such/clf.safetensors", "--data", ClassifierShippedTests.MnistPath);
        Assert.Equal(1, code);
        Assert.StartsWith("error: classifier not found: /no/such/clf.safetensors", err);
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));

        (code, _, err) = Cli("classifier", "train", "--data", ClassifierShippedTests.MnistPath, "--output", "x.safetensors");
        Assert.Equal(1, code);
        Assert.Contains("--test-data", err);
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));

        (code, _, err) = Cli("classifier", "train", "--data", "/no/such/data", "--holdout", "10", "--output", "x.safetensors");
        Assert.Equal(1, code);
        Assert.Contains("/no/such/data", err);
    }
}

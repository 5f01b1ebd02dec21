using System.Globalization;
using Ddpm.Data;
using Ddpm.Metrics.Classifier;
using Ddpm.Tests.Metrics;
using static TorchSharp.torch;

namespace Ddpm.Tests.Cli;

/// <summary>
/// <c>ddpm classifier train</c>'s --max-images, --test-data, --class-names and --max-shift, each checked by its effect on
/// what the command writes and prints. Tiny runs: 100 training digits, one epoch of two batches of 50.
/// </summary>
public class ClassifierTrainOptionTests : OneThreadTest
{
    private static readonly string Mnist = ClassifierShippedTests.MnistPath;
    private static readonly string[] Tiny = { "--epochs", "1", "--batch-size", "50", "--seed", "3", "--no-progress", "--device", "cpu", "--threads", "1" };

    private static (string Out, ClassifierInfo Info, string Weights) Train(string dir, params string[] args)
    {
        var weights = Path.Combine(dir, $"clf-{Guid.NewGuid():N}.safetensors");
        var all = new[] { "classifier", "train", "--output", weights }.Concat(args).Concat(Tiny).ToArray();
        var (code, output, err) = TestUtil.Cli(all);
        Assert.True(code == 0, err);
        var info = ClassifierInfo.FromJson(File.ReadAllText(ClassifierStore.InfoPath(weights)), weights);
        return (output, info, weights);
    }

    /// <summary>The bundled digits first..first+count-1 with their labels, written as an IDX pair (images and labels files).</summary>
    private static string WriteDigits(string dir, int first, int count)
    {
        using var all = DatasetLoader.Load(Mnist, maxCount: first + count);
        using var scope = NewDisposeScope();
        var images = Path.Combine(dir, "images-idx3-ubyte");
        Idx.WriteImages(images, all.Images.narrow(0, first, count), gzip: false);
        Idx.WriteLabels(Path.Combine(dir, "labels-idx1-ubyte"), all.Labels![first..(first + count)], gzip: false);
        return images;
    }

    [Fact]
    public void MaxImagesCapsTheDataBeforeTheHoldoutAndMaxShiftReachesTheTrainer()
    {
        var dir = TestUtil.TempDir();
        // 10,000 bundled digits capped at 120: the last 20 of those are held out, 100 are trained on.
        var (output, info, weights) = Train(dir, "--data", Mnist, "--max-images", "120", "--holdout", "20", "--max-shift", "0");
        Assert.Equal((100, 20), (info.TrainImages, info.HeldOutImages));
        Assert.Contains("train: 100 images 1x28x28", output);
        Assert.Contains("held out: 20 (last 20 of", output);
        Assert.Contains("--max-images 120", info.Command);
        Assert.Equal(0, info.Training.MaxShift);
        Assert.Contains("--max-shift 0", info.Command);
        // ceil(1 epoch x 100 images / 50) = 2 steps.
        Assert.Contains("; 2 steps;", output);

        // The stored weights are the library's training on the first 100 digits with no shifts, bit for bit (same data,
        // options and thread count); the default --max-shift 2 trains other weights.
        using var digits = DatasetLoader.Load(Mnist, maxCount: 120);
        var (first100, _) = ClassifierTrainer.SplitLast(digits, 20);
        using (first100)
        {
            var options = new ClassifierTrainOptions { Epochs = 1, BatchSize = 50, Seed = 3, MaxShift = 0 };
            using var expected = ClassifierTrainer.Train(first100, options);
            using var shifted = ClassifierTrainer.Train(first100, new ClassifierTrainOptions { Epochs = 1, BatchSize = 50, Seed = 3, MaxShift = 2 });
            using var stored = ClassifierStore.Load(weights).Net;
            var got = stored.state_dict();
            Assert.All(expected.state_dict(), kv => Assert.True(kv.Value.equal(got[kv.Key]).all().item<bool>(), kv.Key));
            Assert.Contains(shifted.state_dict(), kv => !kv.Value.equal(got[kv.Key]).all().item<bool>());

            // The held-out accuracy is that of digits 100..119, recounted here with the stored network.
            using var heldOut = DatasetLoader.Load(Mnist, maxCount: 120);
            var predicted = ClassifierTrainer.Predict(stored, heldOut.Images.narrow(0, 100, 20));
            int correct = predicted.Where((p, i) => p == heldOut.Labels![100 + i]).Count();
            Assert.Equal(correct / 20.0, info.HeldOutAccuracy, 12);
        }
    }

    [Fact]
    public void TestDataIsEvaluatedAndClassNamesAreStored()
    {
        var trainDir = TestUtil.TempDir();
        var testDir = TestUtil.TempDir();
        var trainImages = WriteDigits(trainDir, 0, 100);
        var testImages = WriteDigits(testDir, 1000, 60); // digits the training never sees
        string[] names = { "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine" };
        var (output, info, weights) = Train(trainDir, "--data", trainImages, "--test-data", testImages, "--class-names", string.Join(",", names));

        Assert.Equal(names, info.ClassNames);
        Assert.Equal((100, 60), (info.TrainImages, info.HeldOutImages));
        Assert.Equal(testImages, info.HeldOutData);
        Assert.Contains($"--test-data {testImages}", info.Command);
        Assert.Contains("held out: 60 (" + testImages + ")", output);

        // The reported accuracy is the stored network's on the 60 test digits, recounted here.
        using var test = DatasetLoader.Load(testImages);
        using var stored = ClassifierStore.Load(weights).Net;
        var predicted = ClassifierTrainer.Predict(stored, test.Images);
        int correct = predicted.Where((p, i) => p == test.Labels![i]).Count();
        Assert.Equal(correct / 60.0, info.HeldOutAccuracy, 12);
        Assert.Contains(string.Format(CultureInfo.InvariantCulture, "held-out accuracy {0:P2} ({1}/60)", correct / 60.0, correct), output);
        // The per-class line names the classes: digit k's share of the test digits of class k predicted as k.
        double zeros = test.Labels!.Select((l, i) => (l, i)).Where(x => x.l == 0).Average(x => predicted[x.i] == 0 ? 1.0 : 0.0);
        Assert.Contains(string.Format(CultureInfo.InvariantCulture, "per class: zero {0:P1}, one ", zeros), output);

        // The metadata names reach the evaluation's histogram.
        var (code, evalOut, err) = TestUtil.Cli("classifier", "eval", "--classifier", weights, "--data", testImages, "--device", "cpu", "--threads", "1");
        Assert.True(code == 0, err);
        Assert.Contains(" nine ", evalOut);
    }

    [Fact]
    public void ClassNamesMustNameEveryClass()
    {
        var dir = TestUtil.TempDir();
        var (code, _, err) = TestUtil.Cli(new[] { "classifier", "train", "--data", Mnist, "--max-images", "60", "--holdout", "10",
            "--output", Path.Combine(dir, "x.safetensors"), "--class-names", "a,b,c" }.Concat(Tiny).ToArray());
        Assert.Equal(1, code);
        // The first 60 bundled digits hold every label 0..9, so there are 10 classes.
        Assert.Equal("error: --class-names: 3 names for 10 classes (labels 0 to 9)", err.Trim());
    }
}

using System.Diagnostics;
using Ddpm.Data;
using Ddpm.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Metrics.Classifier;

/// <summary>How to train the offline classifier.</summary>
public sealed class ClassifierTrainOptions
{
    /// <summary>Passes over the training images (the last batch of a run may be partial in epoch terms: see <see cref="BatchSampler"/>).</summary>
    public int Epochs { get; set; } = 4;
    public int BatchSize { get; set; } = 128;
    /// <summary>Adam's peak learning rate; it decays to 0 along a half cosine over the run.</summary>
    public double LearningRate { get; set; } = 2e-3;
    /// <summary>Each training image is moved by up to this many whole pixels in each direction (0: no augmentation).</summary>
    public int MaxShift { get; set; } = 2;
    public long Seed { get; set; }

    public void Validate()
    {
        if (Epochs < 1) throw DdpmException.ForSetting("epochs", $"{Epochs}: must be at least 1");
        if (BatchSize < 1) throw DdpmException.ForSetting("batch_size", $"{BatchSize}: must be at least 1");
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) throw DdpmException.ForSetting("learning_rate", $"{LearningRate}: must be a positive number");
        if (MaxShift is < 0 or > 8) throw DdpmException.ForSetting("max_shift", $"{MaxShift}: must be between 0 and 8 pixels");
    }
}

/// <summary>Where a classifier's training is.</summary>
public sealed record ClassifierTrainProgress(long Step, long TotalSteps, double Epoch, double Loss, double LearningRate,
    double ImagesPerSecond, TimeSpan Elapsed, TimeSpan? Eta);

/// <summary>Accuracy of a classifier on labelled images, with the confusion matrix (rows: true class, columns: predicted).</summary>
public sealed record ClassifierEvaluation(int Count, int Correct, long[,] Confusion)
{
    public double Accuracy => Count == 0 ? double.NaN : (double)Correct / Count;

    /// <summary>Counts predicted classes against true labels, both in [0, <paramref name="classes"/>), image by image.</summary>
    public static ClassifierEvaluation FromPredictions(IReadOnlyList<long> predicted, IReadOnlyList<long> labels, int classes)
    {
        ArgumentNullException.ThrowIfNull(predicted);
        ArgumentNullException.ThrowIfNull(labels);
        if (predicted.Count != labels.Count)
            throw new ArgumentException($"{predicted.Count} predictions for {labels.Count} labels", nameof(predicted));
        var confusion = new long[classes, classes];
        int correct = 0;
        for (int i = 0; i < predicted.Count; i++)
        {
            confusion[labels[i], predicted[i]]++;
            if (labels[i] == predicted[i]) correct++;
        }
        return new ClassifierEvaluation(predicted.Count, correct, confusion);
    }

    /// <summary>The fraction of class k's images predicted as k (NaN for a class with no images).</summary>
    public double ClassAccuracy(int k)
    {
        long total = 0;
        for (int j = 0; j < Confusion.GetLength(1); j++) total += Confusion[k, j];
        return total == 0 ? double.NaN : (double)Confusion[k, k] / total;
    }
}

/// <summary>
/// Trains and evaluates the offline classifier (<see cref="ClassifierNet"/>) on labelled images: cross-entropy, Adam with a
/// half-cosine learning-rate decay, random whole-pixel shifts, dropout before the head.
/// <para>Deterministic: the initial weights come from the global generator seeded with the seed; the batch order from
/// <see cref="BatchSampler"/> (seed); each step's shifts and dropout from generators seeded by
/// <see cref="StepRandom.SeedFor"/>(seed, step, stream). The same data, options and intra-op thread count give bitwise the
/// same weights. A different thread count may change the order of libtorch's floating-point reductions and so the last
/// bits of the result: the shipped weights name the thread count they were trained with.</para>
/// <para>Side effect: it reseeds libtorch's global CPU generator (<c>torch.manual_seed</c>).</para>
/// </summary>
public static class ClassifierTrainer
{
    /// <summary>
    /// Trains a new network on <paramref name="data"/> (labels required; images of any size and channel count are
    /// preprocessed as the feature extractor does). The number of classes is the largest label plus one unless
    /// <paramref name="architecture"/> says more. Trains on <paramref name="device"/> (CPU by default); returns the network
    /// there, in eval mode.
    /// </summary>
    public static ClassifierNet Train(ImageDataset data, ClassifierTrainOptions options, ClassifierArchitecture? architecture = null,
        IProgress<ClassifierTrainProgress>? progress = null, Device? device = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var labels = RequireLabels(data);
        int classes = (int)labels.Max() + 1;
        var arch = architecture ?? new ClassifierArchitecture();
        if (architecture is null) arch.Classes = Math.Max(2, classes);
        else if (classes > arch.Classes)
            throw new DdpmException($"{data.Source}: label {classes - 1} does not fit a classifier with {arch.Classes} classes");
        arch.Validate();

        torch.manual_seed(options.Seed);
        var net = new ClassifierNet(arch);
        try
        {
            net.to(device ?? CPU);
            using var optimizer = optim.Adam(net.parameters(), options.LearningRate);
            var sampler = new BatchSampler(data.Count, options.BatchSize, options.Seed);
            long total = TotalSteps(data.Count, options);
            var clock = Stopwatch.StartNew();
            net.train();
            for (long step = 0; step < total; step++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                double lr = LearningRateAt(options.LearningRate, step, total);
                double loss = TrainStep(net, optimizer, data, labels, sampler, options, step, lr);
                if (!double.IsFinite(loss))
                    throw new DdpmException($"classifier training diverged at step {step}: the loss is {loss} (lower learning_rate)");
                if (progress is not null)
                {
                    double secs = clock.Elapsed.TotalSeconds;
                    long done = step + 1;
                    progress.Report(new ClassifierTrainProgress(done, total, done * (double)options.BatchSize / data.Count, loss, lr,
                        done * (double)options.BatchSize / Math.Max(secs, 1e-9), clock.Elapsed,
                        TimeSpan.FromSeconds((total - done) * secs / done)));
                }
            }
            net.eval();
            return net;
        }
        catch
        {
            net.Dispose();
            throw;
        }
    }

    /// <summary>Steps of a run: ceil(epochs x N / batch size).</summary>
    public static long TotalSteps(int count, ClassifierTrainOptions options) =>
        (long)Math.Ceiling((double)options.Epochs * count / options.BatchSize);

    /// <summary>Half-cosine decay from the peak at step 0 towards 0 at the end: lr0 (1 + cos(pi s / S)) / 2.</summary>
    public static double LearningRateAt(double peak, long step, long totalSteps) =>
        peak * 0.5 * (1 + Math.Cos(Math.PI * step / totalSteps));

    private static double TrainStep(ClassifierNet net, optim.Optimizer optimizer, ImageDataset data, long[] labels,
        BatchSampler sampler, ClassifierTrainOptions options, long step, double lr)
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(StepRandom.SeedFor(options.Seed, step, 0)); // dropout
        using var gen = new Generator((ulong)StepRandom.SeedFor(options.Seed, step, 1), CPU);
        var indices = sampler.IndicesForStep(step);
        var x = ClassifierFeatureExtractor.Preprocess(data.Images.index_select(0, tensor(indices, ScalarType.Int64)));
        if (options.MaxShift > 0) x = Augment.RandomShift(x, options.MaxShift, gen);
        var y = tensor(indices.Select(i => labels[i]).ToArray(), ScalarType.Int64);
        var device = net.parameters().First().device;
        x = x.to(device);
        y = y.to(device);

        optimizer.zero_grad();
        var loss = nn.functional.cross_entropy(net.call(x), y);
        loss.backward();
        foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
        optimizer.step();
        return loss.item<float>();
    }

    /// <summary>Accuracy and confusion matrix of <paramref name="net"/> on labelled images (eval mode, no gradients).</summary>
    public static ClassifierEvaluation Evaluate(ClassifierNet net, ImageDataset data, int batchSize = 500)
    {
        ArgumentNullException.ThrowIfNull(net);
        ArgumentNullException.ThrowIfNull(data);
        var labels = RequireLabels(data);
        int k = net.Architecture.Classes;
        if (labels.Max() >= k)
            throw new DdpmException($"{data.Source}: label {labels.Max()} does not fit a classifier with {k} classes");
        return ClassifierEvaluation.FromPredictions(Predict(net, data.Images, batchSize), labels, k);
    }

    /// <summary>The predicted class (argmax of the logits) of each image (N, C, H, W) in [-1, 1].</summary>
    public static long[] Predict(ClassifierNet net, Tensor images, int batchSize = 500)
    {
        ArgumentNullException.ThrowIfNull(net);
        ArgumentNullException.ThrowIfNull(images);
        if (batchSize < 1) throw new DdpmException($"batch size {batchSize}: must be at least 1");
        var device = net.parameters().First().device;
        bool wasTraining = net.training;
        net.eval();
        try
        {
            using var _ = no_grad();
            long n = images.shape[0];
            var result = new long[n];
            for (long start = 0; start < n; start += batchSize)
            {
                using var scope = NewDisposeScope();
                long m = Math.Min(batchSize, n - start);
                var x = ClassifierFeatureExtractor.Preprocess(images.narrow(0, start, m)).to(device);
                var p = net.call(x).argmax(1).cpu().data<long>().ToArray();
                Array.Copy(p, 0, result, start, m);
            }
            return result;
        }
        finally
        {
            if (wasTraining) net.train();
        }
    }

    /// <summary>
    /// Splits a labelled dataset into its first Count - <paramref name="holdout"/> images (training) and its last
    /// <paramref name="holdout"/> (held out); both are new datasets (copies), the input is left as it is.
    /// </summary>
    public static (ImageDataset Train, ImageDataset HeldOut) SplitLast(ImageDataset data, int holdout)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (holdout < 1 || holdout >= data.Count)
            throw DdpmException.ForSetting("holdout", $"{holdout}: must be between 1 and {data.Count - 1} (the data has {data.Count} images)");
        int keep = data.Count - holdout;
        using var scope = NewDisposeScope();
        var train = data.Images.narrow(0, 0, keep).clone().MoveToOuterDisposeScope();
        var test = data.Images.narrow(0, keep, holdout).clone().MoveToOuterDisposeScope();
        return (new ImageDataset(train, data.Labels?[..keep], data.Source),
                new ImageDataset(test, data.Labels?[keep..], $"last {holdout} of {data.Source}"));
    }

    private static long[] RequireLabels(ImageDataset data)
    {
        var labels = data.Labels ?? throw new DdpmException($"{data.Source}: the classifier needs labels (an IDX labels file beside the images)");
        if (labels.Length == 0) throw new DdpmException($"{data.Source}: no images");
        long min = labels.Min();
        if (min < 0) throw new DdpmException($"{data.Source}: negative label {min}");
        return labels;
    }
}

using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Ddpm.Data;
using Ddpm.Metrics;
using Ddpm.Metrics.Classifier;
using Ddpm.Metrics.Evaluation;
using Ddpm.Runtime;
using static TorchSharp.torch;

namespace Ddpm.Cli.Commands;

/// <summary>
/// <c>ddpm classifier train</c> and <c>ddpm classifier eval</c>: the offline classifier whose features give
/// FD_classifier (a Frechet distance that is not FID) and whose predictions give the class histogram and IS_classifier.
/// </summary>
public static class ClassifierCommand
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static Command Create(CliContext ctx)
    {
        var cmd = new Command("classifier", "The offline classifier behind FD_classifier and IS_classifier: train one, or evaluate one on labelled images.");
        cmd.Subcommands.Add(Train(ctx));
        cmd.Subcommands.Add(Eval(ctx));
        return cmd;
    }

    private static Command Train(CliContext ctx)
    {
        var d = new ClassifierTrainOptions();
        var data = new Option<string>("--data") { Description = "Labelled training images: an IDX images file (labels file beside it) or a folder holding one", Required = true };
        var testData = new Option<string>("--test-data") { Description = "Labelled held-out images for the accuracy (instead of --holdout)" };
        var holdout = new Option<int?>("--holdout") { Description = "Hold out the last N images of --data for the accuracy and train on the rest" };
        var output = new Option<string>("--output", "-o") { Description = "Weights file (.safetensors); the metadata goes beside it as .json", Required = true };
        var name = new Option<string>("--name") { Description = "Data set name used in score names, e.g. mnist -> FD_classifier(mnist) (default: from --data)" };
        var classNames = new Option<string>("--class-names") { Description = "Comma-separated class names in label order (default: 0, 1, ...)" };
        var maxImages = new Option<int?>("--max-images") { Description = "Read at most this many images of --data" };
        var epochs = new Option<int>("--epochs") { Description = $"Passes over the training images (default {d.Epochs})", DefaultValueFactory = _ => d.Epochs };
        var batch = new Option<int>("--batch-size") { Description = $"Batch size (default {d.BatchSize})", DefaultValueFactory = _ => d.BatchSize };
        var lr = new Option<double>("--learning-rate", "--lr") { Description = $"Adam's peak learning rate, decayed to 0 by a half cosine (default {d.LearningRate.ToString(Inv)})", DefaultValueFactory = _ => d.LearningRate };
        var shift = new Option<int>("--max-shift") { Description = $"Random whole-pixel shifts up to this many pixels (default {d.MaxShift}; 0 = none)", DefaultValueFactory = _ => d.MaxShift };
        var seed = new Option<long>("--seed") { Description = "Seed of the weights, batch order, shifts and dropout (default 0)", DefaultValueFactory = _ => 0 };
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var noProgress = CommonOptions.NoProgress();
        var cmd = new Command("train", "Train the offline classifier (deterministic: same data, options and --threads give the same weights).")
        {
            data, testData, holdout, output, name, classNames, maxImages, epochs, batch, lr, shift, seed, device, threads, noProgress,
        };
        cmd.SetAction(parse =>
        {
            var options = new ClassifierTrainOptions
            {
                Epochs = parse.GetValue(epochs), BatchSize = parse.GetValue(batch), LearningRate = parse.GetValue(lr),
                MaxShift = parse.GetValue(shift), Seed = parse.GetValue(seed),
            };
            options.Validate();
            var dataPath = parse.GetValue(data)!;
            var testPath = parse.GetValue(testData);
            var hold = parse.GetValue(holdout);
            var outPath = parse.GetValue(output)!;
            if (testPath is null == hold is null) throw new DdpmException("give exactly one of --test-data and --holdout (the accuracy needs held-out images)");
            if (!outPath.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)) throw new DdpmException($"--output {outPath}: must end in .safetensors");
            int threadCount = parse.GetValue(threads);
            var dev = CommonOptions.Setup(parse.GetValue(device)!, threadCount);

            ImageDataset train, test;
            var all = DatasetLoader.Load(dataPath, maxCount: parse.GetValue(maxImages));
            try
            {
                RequireLabels(all, "--data");
                if (hold is int h)
                {
                    (train, test) = ClassifierTrainer.SplitLast(all, h);
                    all.Dispose();
                }
                else
                {
                    test = DatasetLoader.Load(testPath!);
                    try { RequireLabels(test, "--test-data"); }
                    catch { test.Dispose(); throw; }
                    train = all;
                }
            }
            catch
            {
                all.Dispose();
                throw;
            }
            using (train)
            using (test)
            {
                int classes = (int)Math.Max(train.Labels!.Max(), test.Labels!.Max()) + 1;
                var arch = new ClassifierArchitecture { Classes = Math.Max(2, classes) };
                var names = parse.GetValue(classNames) is string cn
                    ? cn.Split(',').Select(s => s.Trim()).ToArray()
                    : Enumerable.Range(0, arch.Classes).Select(k => k.ToString(Inv)).ToArray();
                if (names.Length != arch.Classes)
                    throw new DdpmException($"--class-names: {names.Length} names for {arch.Classes} classes (labels 0 to {arch.Classes - 1})");
                string dataset = parse.GetValue(name) ?? DefaultName(dataPath);
                string heldOutText = hold is int hh ? $"last {hh} of {dataPath}" : testPath!;
                string command = string.Join(' ', new[]
                {
                    "ddpm classifier train", $"--data {dataPath}", hold is int h2 ? $"--holdout {h2}" : $"--test-data {testPath}",
                    $"--output {outPath}", $"--name {dataset}",
                    parse.GetValue(classNames) is string c2 ? $"--class-names \"{c2}\"" : "",
                    parse.GetValue(maxImages) is int mi ? $"--max-images {mi}" : "",
                    $"--epochs {options.Epochs}", $"--batch-size {options.BatchSize}", $"--learning-rate {options.LearningRate.ToString("R", Inv)}",
                    $"--max-shift {options.MaxShift}", $"--seed {options.Seed}", $"--threads {threadCount}",
                }.Where(s => s.Length > 0));

                ctx.Out.WriteLine($"train: {train.Count} images {train.Channels}x{train.Height}x{train.Width} from {train.Source}; held out: {test.Count} ({heldOutText})");
                ctx.Out.WriteLine($"classifier: widths ({string.Join(",", arch.Widths)}), {arch.FeatureDims} features, {arch.Classes} classes; {ClassifierTrainer.TotalSteps(train.Count, options)} steps; device {dev}, {get_num_threads()} threads");
                var clock = Stopwatch.StartNew();
                var token = ctx.CancelOnCtrlC();
                using var net = ProgressView.RunSteps<ClassifierTrainProgress, ClassifierNet>(ctx, parse.GetValue(noProgress), "training",
                    p => (p.Step, p.TotalSteps), Describe, progress => ClassifierTrainer.Train(train, options, arch, progress, dev, token));
                double seconds = clock.Elapsed.TotalSeconds;
                var eval = ClassifierTrainer.Evaluate(net, test);
                var info = new ClassifierInfo
                {
                    Dataset = dataset, ClassNames = names, Architecture = arch,
                    TrainData = dataPath, TrainImages = train.Count,
                    HeldOutData = heldOutText, HeldOutImages = test.Count, HeldOutAccuracy = eval.Accuracy,
                    Training = options, Command = command, Threads = get_num_threads(), TrainSeconds = Math.Round(seconds, 1),
                    TorchSharpVersion = typeof(TorchSharp.torch).Assembly.GetName().Version?.ToString() ?? "",
                };
                ClassifierStore.Save(net, info, outPath);
                ctx.Out.WriteLine(string.Format(Inv, "trained in {0:F1} s; held-out accuracy {1:P2} ({2}/{3})", seconds, eval.Accuracy, eval.Correct, eval.Count));
                WritePerClass(ctx, eval, names);
                ctx.Out.WriteLine($"wrote {outPath} ({new FileInfo(outPath).Length:N0} bytes) and {ClassifierStore.InfoPath(outPath)}");
            }
            return 0;
        });
        return cmd;
    }

    private static Command Eval(CliContext ctx)
    {
        var classifier = new Option<string>("--classifier") { Description = "mnist, fashion-mnist (built in) or a .safetensors file", Required = true };
        var data = new Option<string>("--data") { Description = "Images to classify (IDX file or folder; with labels the accuracy is printed too)", Required = true };
        var last = new Option<int?>("--last") { Description = "Only the last N images (the built-in mnist classifier's held-out set is --last 1000 of the bundled digits)" };
        var floor = new Option<int?>("--floor") { Description = "Also print FD_classifier between two disjoint random sets of N of these images (the real-vs-real floor)" };
        var seed = new Option<long>("--seed") { Description = "Seed of the --floor subsets (default 0)", DefaultValueFactory = _ => 0 };
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var cmd = new Command("eval", "Classify images with an offline classifier: accuracy (with labels), class histogram, IS_classifier, optional real-vs-real floor.")
        {
            classifier, data, last, floor, seed, device, threads,
        };
        cmd.SetAction(parse =>
        {
            var dev = CommonOptions.Setup(parse.GetValue(device)!, parse.GetValue(threads));
            using var extractor = ClassifierFeatureExtractor.Load(parse.GetValue(classifier)!, dev);
            var info = extractor.Info;
            var set = DatasetLoader.Load(parse.GetValue(data)!);
            if (parse.GetValue(last) is int n)
            {
                var (rest, tail) = ClassifierTrainer.SplitLast(set, n);
                rest.Dispose();
                set.Dispose();
                set = tail;
            }
            using (set)
            {
                ctx.Out.WriteLine($"{extractor.Name} ({extractor.Source}; trained on {info.TrainImages} images of {info.TrainData}, held-out accuracy {info.HeldOutAccuracy.ToString("P2", Inv)} on {info.HeldOutImages} images: {info.HeldOutData})");
                ctx.Out.WriteLine($"data: {set.Count} images {set.Channels}x{set.Height}x{set.Width} from {set.Source}");
                using var scope = NewDisposeScope();
                var all = FeatureExtraction.ExtractAll(extractor, set.Images);
                var logits = all.Logits!;
                var hist = ClassHistogram.FromLogits(logits);
                if (set.Labels is not null && set.Labels.Max() < extractor.Classes)
                {
                    var accuracy = ClassifierEvaluation.FromPredictions(logits.argmax(1).data<long>().ToArray(), set.Labels, extractor.Classes);
                    ctx.Out.WriteLine(string.Format(Inv, "accuracy: {0:P2} ({1}/{2})", accuracy.Accuracy, accuracy.Correct, accuracy.Count));
                }
                ctx.Out.WriteLine("predicted classes:");
                for (int k = 0; k < hist.Classes; k++)
                    ctx.Out.WriteLine(string.Format(Inv, "  {0,2} {1,-12} {2,7} {3,7:P1}", k, info.ClassNames[k], hist.Counts[k], hist.Fractions[k]));
                ctx.Out.WriteLine(string.Format(Inv, "histogram vs uniform: total variation {0:F4}, KL {1:F4} nats", hist.TotalVariationFromUniform(), hist.KlFromUniform()));
                if (set.Count >= InceptionScore.DefaultSplits)
                {
                    var score = InceptionScore.FromLogits(logits);
                    ctx.Out.WriteLine(string.Format(Inv, "{0}: {1:F3} +- {2:F3} ({3} splits)", extractor.ScoreName, score.Mean, score.Std, InceptionScore.DefaultSplits));
                }
                if (parse.GetValue(floor) is int f)
                {
                    double fd = DomainScores.RealFloor(all.Features, f, parse.GetValue(seed));
                    ctx.Out.WriteLine(string.Format(Inv, "{0} floor, two disjoint sets of {1} of these images (seed {2}): {3:F4}", extractor.DistanceName, f, parse.GetValue(seed), fd));
                }
            }
            return 0;
        });
        return cmd;
    }

    private static void RequireLabels(ImageDataset data, string option)
    {
        if (data.Labels is null)
            throw new DdpmException($"{option} {data.Source}: no labels (the classifier needs an IDX labels file beside the images)");
    }

    /// <summary>"mnist-10k" for ".../mnist-10k" or ".../mnist-10k/images-idx3-ubyte.gz"; "fashion-mnist" for its train file.</summary>
    private static string DefaultName(string path)
    {
        var full = Path.GetFullPath(path).TrimEnd(Path.DirectorySeparatorChar);
        return Directory.Exists(full) ? Path.GetFileName(full) : Path.GetFileName(Path.GetDirectoryName(full) ?? full);
    }

    private static void WritePerClass(CliContext ctx, ClassifierEvaluation eval, string[] names)
    {
        var parts = names.Select((nm, k) => string.Format(Inv, "{0} {1:P1}", nm, eval.ClassAccuracy(k)));
        ctx.Out.WriteLine("per class: " + string.Join(", ", parts));
    }

    private static string Describe(ClassifierTrainProgress p) => string.Format(Inv, "step {0}/{1} epoch {2:F2} loss {3:F4} lr {4:0.0e+00} {5:F0} img/s eta {6:hh\\:mm\\:ss}",
        p.Step, p.TotalSteps, p.Epoch, p.Loss, p.LearningRate, p.ImagesPerSecond, p.Eta ?? TimeSpan.Zero);
}

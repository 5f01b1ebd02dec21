using System.Diagnostics;
using System.Globalization;
using System.Text;
using Ddpm.Data;
using Ddpm.Metrics;
using Ddpm.Metrics.Classifier;
using Ddpm.Models;
using Ddpm.Runtime;
using Ddpm.Sampling;
using Ddpm.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Bench;

public sealed class BenchOptions
{
    public string Preset { get; set; } = Presets.Default;
    public int BatchSize { get; set; } = 64;
    public int ThroughputSteps { get; set; } = 20;
    public int SoakSteps { get; set; } = 1000;
    public int SoakBatch { get; set; } = 4;
    public int SampleSteps { get; set; } = 20;
    public int Threads { get; set; }
    /// <summary>Measure only the offline classifier's feature extraction.</summary>
    public bool ClassifierOnly { get; set; }
    /// <summary>Also measure FID Inception feature extraction (--inception), or only that (--inception-only).</summary>
    public bool Inception { get; set; }
    public bool InceptionOnly { get; set; }
    public int InceptionBatch { get; set; } = 50;
    public int InceptionBatches { get; set; } = 2;

    public static BenchOptions Parse(string[] args)
    {
        var o = new BenchOptions();
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--preset": o.Preset = Next(); break;
                case "--batch-size": o.BatchSize = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--steps": o.ThroughputSteps = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--soak-steps": o.SoakSteps = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--soak-batch": o.SoakBatch = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--sample-steps": o.SampleSteps = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--threads": o.Threads = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--classifier-only": o.ClassifierOnly = true; break;
                case "--inception": o.Inception = true; break;
                case "--inception-only": o.Inception = o.InceptionOnly = true; break;
                case "--inception-batch": o.InceptionBatch = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--inception-batches": o.InceptionBatches = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"unknown option {args[i]}");
            }
        }
        return o;
    }
}

public static class Benchmarks
{
    public static string Run(BenchOptions o, TextWriter log)
    {
        var inv = CultureInfo.InvariantCulture;
        int threads = TorchRuntime.SetThreads(o.Threads);
        var sb = new StringBuilder();
        void Line(string s) { sb.AppendLine(s); log.WriteLine(s); }
        Line($"ddpm benchmark: preset {o.Preset}, {threads} threads, {Environment.ProcessorCount} cores, {RuntimeInfo()}");
        if (o.ClassifierOnly)
        {
            using var digits = DatasetLoader.Load(FindBundledData(), maxCount: 2048);
            Line(ClassifierThroughput(digits));
            return sb.ToString();
        }

        // 1. The machine's reference rate: fp32 matmul 1024x1024.
        double matmulGflops = MatmulGflops();
        Line(string.Format(inv, "matmul 1024x1024 fp32: {0:F1} GFLOP/s", matmulGflops));
        if (o.Inception) InceptionBenchmark.Run(o, Line);
        if (o.InceptionOnly) return sb.ToString();

        // 2. Training throughput at the default batch.
        var dataPath = FindBundledData();
        using var data = DatasetLoader.Load(dataPath, maxCount: 2048);
        var config = new TrainConfig { Data = dataPath, Preset = o.Preset, BatchSize = o.BatchSize, Steps = long.MaxValue / 2, Device = "cpu", CheckpointEvery = 0 };
        var runDir = Path.Combine(Path.GetTempPath(), $"ddpm-bench-{Guid.NewGuid():N}");
        try
        {
            double trainIps, gflopPerImage;
            using (var trainer = Trainer.Start(config, runDir, data))
            {
                for (int i = 0; i < 3; i++) trainer.TrainStep(); // warm-up
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < o.ThroughputSteps; i++) trainer.TrainStep();
                double secs = sw.Elapsed.TotalSeconds;
                trainIps = o.ThroughputSteps * (double)o.BatchSize / secs;
                gflopPerImage = ModelStats.Gflops(trainer.Config.Model!);
                // Training costs about three forward passes (forward, and backward for activations and weights).
                double achieved = trainIps * 3 * gflopPerImage;
                Line(string.Format(inv, "model: {0:N0} parameters, {1:F3} GFLOP per image (forward)", ModelStats.CountParameters(trainer.Model), gflopPerImage));
                Line(string.Format(inv, "training: {0:F1} images/s at batch {1} ({2:F2} s/step)", trainIps, o.BatchSize, secs / o.ThroughputSteps));
                Line(string.Format(inv, "training achieved: {0:F1} GFLOP/s (3 x forward), {1:P0} of the matmul rate", achieved, achieved / matmulGflops));

                // 3. Sampling speed at batch 64: denoising steps per second.
                var shape = new long[] { 64, data.Channels, data.Height, data.Width };
                using var noise = randn(shape);
                using var _ = no_grad();
                trainer.EmaModel.eval();
                var t = full(new long[] { 64 }, 10L, ScalarType.Int64);
                trainer.EmaModel.call(noise, t).Dispose();
                sw.Restart();
                for (int i = 0; i < o.SampleSteps; i++)
                {
                    using var scope = NewDisposeScope();
                    var x = noise.clone();
                    var (sample, _) = trainer.Diffusion.PSample(trainer.EmaModel, x, t, randn(shape), true);
                }
                double sps = o.SampleSteps / sw.Elapsed.TotalSeconds;
                Line(string.Format(inv, "sampling: {0:F2} denoising steps/s at batch 64 ({1:F1} images/s through all {2} steps; {3:F1} min for 64 images)",
                    sps, sps * 64 / trainer.Diffusion.Timesteps, trainer.Diffusion.Timesteps, trainer.Diffusion.Timesteps / sps / 60));
                t.Dispose();

                // 3b. The fast samplers through their whole loop (x_T, model, update) at batch 64.
                foreach (var kind in new[] { SamplerKind.Ddim, SamplerKind.DpmSolver })
                {
                    var settings = new SamplerSettings { Kind = kind, Steps = Math.Min(o.SampleSteps, trainer.Diffusion.Timesteps) };
                    int steps = settings.ResolveTimesteps(trainer.Diffusion.Schedule).Length;
                    sw.Restart();
                    using (Sampler.Sample(trainer.Diffusion, trainer.EmaModel, shape, settings, new SamplerOptions())) { }
                    double kindSps = steps / sw.Elapsed.TotalSeconds;
                    int defaultSteps = SamplerSettings.DefaultSteps(kind, trainer.Diffusion.Timesteps);
                    Line(string.Format(inv, "sampling {0}: {1:F2} steps/s at batch 64 ({2:F1} s for 64 images at its default {3} steps)",
                        SamplerSettings.Name(kind), kindSps, defaultSteps / kindSps, defaultSteps));
                }
            }

            // 4. Memory soak: many small steps; live tensors and resident memory must stay flat.
            var soak = new TrainConfig { Data = dataPath, Preset = o.Preset, BatchSize = o.SoakBatch, Steps = long.MaxValue / 2, Device = "cpu", CheckpointEvery = 0 };
            using (var trainer = Trainer.Start(soak, runDir + "-soak", data))
            {
                long live100 = 0, rss100 = 0;
                for (int i = 1; i <= o.SoakSteps; i++)
                {
                    trainer.TrainStep();
                    if (i == Math.Min(100, o.SoakSteps))
                    {
                        GC.Collect();
                        live100 = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
                        rss100 = Process.GetCurrentProcess().WorkingSet64;
                    }
                }
                GC.Collect();
                long liveEnd = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
                long rssEnd = Process.GetCurrentProcess().WorkingSet64;
                Line(string.Format(inv, "memory soak (batch {0}): live tensors {1} at step 100, {2} at step {3}; resident {4:F0} MiB at step 100, {5:F0} MiB at step {3}",
                    o.SoakBatch, live100, liveEnd, o.SoakSteps, rss100 / 1048576.0, rssEnd / 1048576.0));
            }
            // 5. The offline classifier's feature extraction (FD_classifier, IS_classifier), at batch 250.
            Line(ClassifierThroughput(data));
            Line(string.Format(inv, "peak resident memory: {0:F0} MiB", Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0));
        }
        finally
        {
            foreach (var d in new[] { runDir, runDir + "-soak" })
                if (Directory.Exists(d)) Directory.Delete(d, recursive: true);
        }
        return sb.ToString();
    }

    /// <summary>Images per second through the built-in MNIST classifier (quantise, preprocess, features and logits).</summary>
    private static string ClassifierThroughput(ImageDataset data)
    {
        using var extractor = ClassifierFeatureExtractor.Load("mnist");
        using var scope = NewDisposeScope();
        var images = data.Images;
        FeatureExtraction.ExtractAll(extractor, images.narrow(0, 0, 250)); // warm-up
        double best = 0;
        for (int round = 0; round < 3; round++)
        {
            var sw = Stopwatch.StartNew();
            FeatureExtraction.ExtractAll(extractor, images, batchSize: 250);
            best = Math.Max(best, images.shape[0] / sw.Elapsed.TotalSeconds);
        }
        return string.Format(CultureInfo.InvariantCulture, "classifier features ({0}, {1}-d): {2:F0} images/s at batch 250 (best of 3 passes over {3} images)",
            extractor.Name, extractor.FeatureDims, best, images.shape[0]);
    }

    private static double MatmulGflops()
    {
        using var a = randn(1024, 1024);
        using var b = randn(1024, 1024);
        for (int i = 0; i < 5; i++) matmul(a, b).Dispose();
        // Best of five rounds: the machine's attainable rate, not its average under other load.
        double best = 0;
        const int reps = 20;
        for (int round = 0; round < 5; round++)
        {
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < reps; i++) matmul(a, b).Dispose();
            best = Math.Max(best, reps * 2.0 * 1024 * 1024 * 1024 / sw.Elapsed.TotalSeconds / 1e9);
        }
        return best;
    }

    private static string RuntimeInfo() => $"TorchSharp {typeof(torch).Assembly.GetName().Version}, .NET {Environment.Version}";

    private static string FindBundledData()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Ddpm.slnx"))) dir = dir.Parent;
        if (dir is null) throw new DdpmException("run the benchmark from inside the repository (data/mnist-10k not found)");
        return Path.Combine(dir.FullName, "data", "mnist-10k", "images-idx3-ubyte.gz");
    }
}

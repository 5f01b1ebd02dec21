using Ddpm.Diffusion;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Ddpm.Data;
using Ddpm.Metrics;
using Ddpm.Metrics.Classifier;
using Ddpm.Metrics.Evaluation;
using Ddpm.Models;
using Ddpm.Runs;
using Ddpm.Runtime;
using Ddpm.Sampling;
using Ddpm.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Bench;

public static class Benchmarks
{
    /// <summary>The timed training reads the loss back every this many steps, as <c>ddpm train</c> does at its default log interval.</summary>
    public const int ReadBackEvery = 10;

    public static string Run(BenchOptions o, TextWriter log)
    {
        var inv = CultureInfo.InvariantCulture;
        int threads = TorchRuntime.SetThreads(o.Threads);
        TorchRuntime.SetNnpack(false); // as the CLI: its "Unsupported hardware" warnings would flood the output
        var device = TorchRuntime.ResolveDevice(o.Device);
        if (o.Tf32 != "default")
        {
            torch.backends.cuda.matmul.allow_tf32 = o.Tf32 == "on";
            torch.backends.cudnn.allow_tf32 = o.Tf32 == "on";
        }
        var sb = new StringBuilder();
        void Line(string s) { sb.AppendLine(s); log.WriteLine(s); }
        Line($"ddpm benchmark: preset {o.Preset}, device {device}, {threads} threads, {Environment.ProcessorCount} cores, {RuntimeInfo()}");
        Line(NativeAllocator.Applied
            ? $"native allocator: glibc's mmap threshold {NativeAllocator.MmapThresholdBytes >> 20} MiB and trim threshold {NativeAllocator.TrimThresholdBytes / (1 << 20)} MiB, as the CLI sets them (the PyTorch peer gets the same through MALLOC_*_ variables)"
            : $"native allocator: the C library's defaults ({NativeAllocator.OptOutVariable}=default, or not glibc on Linux); the PyTorch peer too");
        if (device.type == DeviceType.CUDA)
            Line($"TF32: matmul {torch.backends.cuda.matmul.allow_tf32}, cuDNN {torch.backends.cudnn.allow_tf32} (--tf32 {o.Tf32})");
        if (o.ConvCheck > 0)
        {
            ConvCheck.Run(o.Preset, o.ConvCheck, Line);
            return sb.ToString();
        }
        if (o.ClassifierOnly)
        {
            using var digits = DatasetLoader.Load(FindBundledData(), maxCount: 2048);
            Line(ClassifierThroughput(digits));
            return sb.ToString();
        }

        // 1. The machine's reference rate: fp32 matmul 1024x1024.
        int matmulSize = device.type == DeviceType.CUDA ? 8192 : 1024;
        double matmulGflops = MatmulGflops(device, matmulSize);
        Line(string.Format(inv, "matmul {0}x{0} fp32 on {1}: {2:F1} GFLOP/s", matmulSize, device, matmulGflops));
        if (o.Inception) InceptionBenchmark.Run(o, Line);
        if (o.InceptionOnly) return sb.ToString();

        // 2. Training throughput at the default batch.
        var dataPath = FindBundledData();
        // The bundled digits are 28x28: resized to the preset's own size (ho-cifar10's 32), whose network cannot take 28.
        int presetSize = Ddpm.Models.Presets.Get(o.Preset).ImageSize;
        using var data = DatasetLoader.Load(dataPath, presetSize, maxCount: 2048);
        // eps, as the PyTorch peer trains it (bench/pytorch_peer.py), so the two do the same work.
        var config = new TrainConfig { Prediction = PredictionType.Epsilon, Data = dataPath, Preset = o.Preset, ImageSize = presetSize, BatchSize = o.BatchSize, Steps = long.MaxValue / 2, Device = DeviceSpec.Parse(o.Device), CheckpointEvery = 0 };
        var (peer, peerWhy) = PeerBenchmark.Find(o.Peer, RepoRoot());
        var runDir = Path.Combine(Path.GetTempPath(), $"ddpm-bench-{Guid.NewGuid():N}");
        try
        {
            double trainIps, gflopPerImage;
            using (var trainer = Trainer.Start(config, runDir, data))
            {
                for (int i = 0; i < 3; i++) trainer.TrainStep(); // warm-up
                peer?.Capture(trainer); // after a few steps: a fresh U-Net's zero-initialised output convolutions make its output 0
                double secs = TimedTraining(trainer, o.ThroughputSteps, device);
                trainIps = o.ThroughputSteps * (double)o.BatchSize / secs;
                gflopPerImage = ModelStats.Gflops(trainer.Config.Model!);
                // Training costs about three forward passes (forward, and backward for activations and weights).
                double achieved = trainIps * 3 * gflopPerImage;
                Line(string.Format(inv, "model: {0:N0} parameters, {1:F3} GFLOP per image (forward)", ModelStats.CountParameters(trainer.Model), gflopPerImage));
                Line(string.Format(inv, "training: {0:F1} images/s at batch {1} ({2:F2} s/step; loss read back every {3} steps; data set held on the device: {4})",
                    trainIps, o.BatchSize, secs / o.ThroughputSteps, ReadBackEvery, trainer.DataHeldOnDevice ? "yes" : device.type == DeviceType.CPU ? "it is the CPU" : "no"));
                Line(string.Format(inv, "training achieved: {0:F1} GFLOP/s (3 x forward), {1:P0} of the matmul rate", achieved, achieved / matmulGflops));
                var (stepSecs, netSecs) = LoopAndNetworkSeconds(trainer, data, o.BatchSize, device);
                Line(string.Format(inv, "training loop overhead: {0:P1} over the network's own forward + loss + backward ({1:F3} s of the {2:F3} s step: data, noise, optimiser, clipping, EMA, read-backs; 5 interleaved rounds)",
                    (stepSecs - netSecs) / netSecs, netSecs, stepSecs));
                if (device.type == DeviceType.CPU) Line(SafeConvCost(trainer, o.SafeConvCompare));
                if (peer is null) Line($"PyTorch peer: not run ({peerWhy})");
                else
                {
                    Line(PeerBenchmark.Describe(peer.Train(trainer, o, dataPath, (int)data.Count, threads), trainIps));
                    if (o.PeerRounds > 1) Line(InterleavedPeerRounds(trainer, peer, o, dataPath, (int)data.Count, threads, device));
                }

                // 3. Sampling speed at batch 64: denoising steps per second.
                var shape = new long[] { 64, data.Channels, data.Height, data.Width };
                using var noise = randn(shape, device: device);
                using var _ = no_grad();
                trainer.EmaModel.eval();
                var t = full(new long[] { 64 }, 10L, ScalarType.Int64, device: device);
                trainer.EmaModel.call(noise, t).Dispose();
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < o.SampleSteps; i++)
                {
                    using var scope = NewDisposeScope();
                    var x = noise.clone();
                    var (sample, _) = trainer.Diffusion.PSample(trainer.EmaModel, x, t, randn(shape, device: device), true);
                }
                Synchronize(device);
                double sps = o.SampleSteps / sw.Elapsed.TotalSeconds;
                sw.Restart();
                for (int i = 0; i < o.SampleSteps; i++) trainer.EmaModel.call(noise, t).Dispose();
                Synchronize(device);
                double forwardsPerSecond = o.SampleSteps / sw.Elapsed.TotalSeconds;
                Line(string.Format(inv, "sampling loop overhead: {0:P1} over the network's forward pass alone ({1:F2} forwards/s at batch 64)",
                    forwardsPerSecond / sps - 1, forwardsPerSecond));
                Line(string.Format(inv, "sampling: {0:F2} denoising steps/s at batch 64 ({1:F1} images/s through all {2} steps; {3:F1} min for 64 images)",
                    sps, sps * 64 / trainer.Diffusion.Timesteps, trainer.Diffusion.Timesteps, trainer.Diffusion.Timesteps / sps / 60));
                t.Dispose();

                // 3b. The fast samplers through their whole loop (x_T, model, update) at batch 64.
                foreach (var name in new[] { DdimSampler.RegistryName, DpmSolverSampler.RegistryName })
                {
                    var sampler = SamplerRegistry.Create(name, so => so with { Steps = Math.Min(o.SampleSteps, trainer.Diffusion.Timesteps) });
                    int steps = sampler.Timesteps(trainer.Diffusion.Schedule).Length;
                    sw.Restart();
                    using (sampler.Sample(trainer.Diffusion, trainer.EmaModel, shape, null, device)) { }
                    Synchronize(device);
                    double kindSps = steps / sw.Elapsed.TotalSeconds;
                    int defaultSteps = SamplerRegistry.Create(name).Timesteps(trainer.Diffusion.Schedule).Length;
                    Line(string.Format(inv, "sampling {0}: {1:F2} steps/s at batch 64 ({2:F1} s for 64 images at its default {3} steps)",
                        name, kindSps, defaultSteps / kindSps, defaultSteps));
                }
            }

            // 4. Memory soak: many small steps; live tensors and resident memory must stay flat.
            var soak = new TrainConfig { Prediction = PredictionType.Epsilon, Data = dataPath, Preset = o.Preset, ImageSize = presetSize, BatchSize = o.SoakBatch, Steps = long.MaxValue / 2, Device = DeviceSpec.Parse(o.Device), CheckpointEvery = 0 };
            if (o.SoakSteps > 0)
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
            peer?.Dispose();
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

    /// <summary>
    /// Seconds per training step, and per step of the network's own work in training (forward, L_simple and backward on
    /// one batch already on the device, nothing else: no data gathering, noise, optimiser, clipping, EMA or read-back).
    /// The two are timed in interleaved rounds, so that a machine whose speed drifts (shared, throttled) affects both alike.
    /// </summary>
    private static (double Step, double Network) LoopAndNetworkSeconds(Trainer trainer, ImageDataset data, int batch, Device device)
    {
        using var outer = NewDisposeScope();
        var x0 = data.Images.narrow(0, 0, Math.Min(batch, data.Count)).to(device);
        using var gen = new Generator(1, CPU);
        var t = randint(0, trainer.Diffusion.Timesteps, new long[] { x0.shape[0] }, generator: gen).to(device);
        var noise = randn(x0.shape, generator: gen).to(device);
        void NetworkOnly()
        {
            using var scope = NewDisposeScope();
            trainer.Model.train();
            trainer.Model.zero_grad();
            trainer.Diffusion.TrainingLosses(trainer.Model, x0, t, noise).mean().backward();
        }
        double Time(Action work)
        {
            Synchronize(device);
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < 2; i++) work();
            Synchronize(device);
            return sw.Elapsed.TotalSeconds / 2;
        }
        NetworkOnly();
        double step = 0, network = 0;
        for (int round = 0; round < 5; round++)
        {
            step += Time(() => trainer.TrainStep());
            network += Time(NetworkOnly);
        }
        trainer.Model.zero_grad();
        return (step / 5, network / 5);
    }

    /// <summary>Seconds of <paramref name="steps"/> training steps run as `ddpm train` runs them: the loss stays on the device until a log line reads the window back.</summary>
    private static double TimedTraining(Trainer trainer, int steps, Device device)
    {
        Synchronize(device);
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < steps; i++)
        {
            trainer.Advance();
            if ((i + 1) % ReadBackEvery == 0 || i == steps - 1) trainer.ReadWindow();
        }
        Synchronize(device);
        return sw.Elapsed.TotalSeconds;
    }

    /// <summary>
    /// C# and the peer timed in alternating rounds (a C# block of the timed steps, then the peer's), so that a change
    /// of the machine's speed between them shows as a spread of the per-round ratios instead of one wrong ratio.
    /// </summary>
    private static string InterleavedPeerRounds(Trainer trainer, PeerBenchmark peer, BenchOptions o, string dataPath, int images, int threads, Device device)
    {
        var inv = CultureInfo.InvariantCulture;
        var rounds = new List<(double CSharp, double Peer)>();
        var once = new BenchOptions { Device = o.Device, BatchSize = o.BatchSize, ThroughputSteps = o.ThroughputSteps, Tf32 = o.Tf32, PeerNoEma = false };
        for (int r = 0; r < o.PeerRounds; r++)
        {
            double cs = o.ThroughputSteps * (double)o.BatchSize / TimedTraining(trainer, o.ThroughputSteps, device);
            double py = (double)peer.Train(trainer, once, dataPath, images, threads)["train_images_per_s"]!;
            rounds.Add((cs, py));
        }
        var ratios = rounds.Select(x => x.CSharp / x.Peer).Order().ToArray();
        return string.Format(inv, "C#/PyTorch in {0} alternating rounds of {1} steps each: {2}; median {3:F2}x",
            rounds.Count, o.ThroughputSteps,
            string.Join(", ", rounds.Select(x => string.Format(inv, "{0:F0}/{1:F0} images/s ({2:F2}x)", x.CSharp, x.Peer, x.CSharp / x.Peer))),
            ratios[ratios.Length / 2]);
    }

    /// <summary>
    /// What the oneDNN workaround costs on the CPU: training steps with <see cref="SafeConv"/>'s policy (libtorch's own
    /// input gradient from <see cref="SafeConv.TrustedInputGradChannels"/> output channels on) against steps with every
    /// convolution's input gradient through the workaround and, when <paramref name="compare"/> is not 0, with
    /// libtorch's own from <paramref name="compare"/> output channels on, in interleaved rounds.
    /// </summary>
    private static string SafeConvCost(Trainer trainer, int compare)
    {
        int trusted = SafeConv.TrustedInputGradChannels;
        double Time(int policy)
        {
            SafeConv.TrustedInputGradChannels = policy;
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < 2; i++) trainer.TrainStep();
            return sw.Elapsed.TotalSeconds / 2;
        }
        try
        {
            Time(int.MaxValue);
            double policySecs = 0, everySecs = 0, compareSecs = 0;
            for (int round = 0; round < 3; round++)
            {
                policySecs += Time(trusted);
                if (compare > 0) compareSecs += Time(compare);
                everySecs += Time(int.MaxValue);
            }
            string compared = compare > 0
                ? string.Format(CultureInfo.InvariantCulture, ", {0:F3} s/step trusting it from {1} output channels ({2:F2}x)", compareSecs / 3, compare, compareSecs / policySecs)
                : "";
            return string.Format(CultureInfo.InvariantCulture,
                "SafeConv: {0:F3} s/step with libtorch's own input gradients from {1} output channels (the default), {2:F3} s/step with every input gradient through the workaround ({3:F2}x){4}; 3 interleaved rounds",
                policySecs / 3, trusted, everySecs / 3, everySecs / policySecs, compared);
        }
        finally
        {
            SafeConv.TrustedInputGradChannels = trusted;
        }
    }

    /// <summary>Waits for the device's queued work, so that a timer measures work done, not work queued.</summary>
    private static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize(device);
    }

    private static double MatmulGflops(Device device, int n)
    {
        using var a = randn(n, n, device: device);
        using var b = randn(n, n, device: device);
        for (int i = 0; i < 5; i++) matmul(a, b).Dispose();
        Synchronize(device);
        // Best of five rounds: the machine's attainable rate, not its average under other load.
        double best = 0;
        const int reps = 20;
        for (int round = 0; round < 5; round++)
        {
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < reps; i++) matmul(a, b).Dispose();
            Synchronize(device);
            best = Math.Max(best, reps * 2.0 * n * n * n / sw.Elapsed.TotalSeconds / 1e9);
        }
        return best;
    }

    private static string RuntimeInfo() => $"TorchSharp {typeof(torch).Assembly.GetName().Version}, .NET {Environment.Version}";

    private static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Ddpm.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new DdpmException("run the benchmark from inside the repository (Ddpm.slnx not found above it)");
    }

    private static string FindBundledData() => Path.Combine(RepoRoot(), "data", "mnist-10k", "images-idx3-ubyte.gz");
}

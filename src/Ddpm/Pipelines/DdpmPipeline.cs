using TorchSharp;
using Ddpm.Diffusion;
using Ddpm.Models;
using Ddpm.Runtime;
using Ddpm.Sampling;
using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Pipelines;

/// <summary>
/// A trained model ready to generate: the network (EMA weights by default) and its diffusion, loaded from a
/// run folder, a checkpoint folder or a weights file inside one. Needs nothing of the training data.
/// </summary>
public sealed class DdpmPipeline : IDisposable
{
    public UNet Model { get; }
    public GaussianDiffusion Diffusion { get; }
    public TrainConfig Config { get; }
    public string CheckpointDir { get; }
    public long Step { get; }
    public Device Device { get; }

    private DdpmPipeline(UNet model, GaussianDiffusion diffusion, TrainConfig config, string dir, long step, Device device)
    {
        Model = model;
        Diffusion = diffusion;
        Config = config;
        CheckpointDir = dir;
        Step = step;
        Device = device;
    }

    /// <summary>
    /// Loads a pipeline. A path to <c>model.safetensors</c> selects the raw weights; otherwise the EMA weights are
    /// used unless <paramref name="useEma"/> is false.
    /// </summary>
    public static DdpmPipeline Load(string path, Device device, bool useEma = true)
    {
        var dir = CheckpointStore.Resolve(path);
        var state = CheckpointStore.ReadState(dir);
        var config = state.Config;
        if (config.Model is null) throw new DdpmException($"{dir}: the checkpoint's configuration has no model");
        string weights = File.Exists(path) ? Path.GetFullPath(path)
            : Path.Combine(dir, useEma ? CheckpointStore.EmaFile : CheckpointStore.ModelFile);
        var model = new UNet(config.Model);
        try
        {
            CheckpointStore.LoadWeights(model, weights);
            model.to(device);
            model.eval();
            return new DdpmPipeline(model, DiffusionFactory.Diffusion(config), config, dir, state.Step, device);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    public long[] ImageShape(int count) => new long[] { count, Config.Model!.InChannels, Config.Model.ImageSize, Config.Model.ImageSize };

    /// <summary>
    /// Generates <paramref name="count"/> images with DDPM's ancestral sampler over all T steps, in batches of
    /// <paramref name="batchSize"/>. Batch i is drawn with seed (seed + i), so the same seed and batch size give the
    /// same images. Returns (count, C, H, W) in [-1, 1] on the CPU.
    /// </summary>
    public Tensor Sample(int count, long seed, int batchSize = 64, bool clipDenoised = true,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default) =>
        Sample(count, seed, new SamplerSettings(), new SamplerOptions { ClipDenoised = clipDenoised }, batchSize, progress, cancellationToken);

    /// <summary>
    /// Generates <paramref name="count"/> images with any sampler (<paramref name="sampler"/>: kind, steps or
    /// timesteps, eta) and x_0 thresholding (<paramref name="options"/>; its seed and trajectory settings are ignored),
    /// in batches of <paramref name="batchSize"/>. Batch i is drawn with seed (seed + i), so the same seed, sampler and
    /// batch size give the same images. Progress counts denoising steps over all batches.
    /// Returns (count, C, H, W) on the CPU.
    /// </summary>
    public Tensor Sample(int count, long seed, SamplerSettings sampler, SamplerOptions options, int batchSize = 64,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sampler);
        ArgumentNullException.ThrowIfNull(options);
        if (count < 1) throw DdpmException.ForSetting("count", $"{count}: must be at least 1");
        if (batchSize < 1) throw DdpmException.ForSetting("batch_size", $"{batchSize}: must be at least 1");
        int steps = sampler.ResolveTimesteps(Diffusion.Schedule).Length;
        var parts = new List<Tensor>();
        int batches = (count + batchSize - 1) / batchSize;
        int total = batches * steps;
        try
        {
            for (int b = 0; b < batches; b++)
            {
                int n = Math.Min(batchSize, count - b * batchSize);
                int offset = b * steps;
                var inner = progress is null ? null : new SyncProgress<int>(done => progress.Report((offset + done, total)));
                var batchOptions = WithSeed(options, seed + b);
                using var result = Sampler.Sample(Diffusion, Model, ImageShape(n), sampler, batchOptions, Device, inner, cancellationToken);
                parts.Add(result.Samples.detach().clone());
            }
            return cat(parts, 0);
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    /// <summary>
    /// <paramref name="frames"/> images along the spherical interpolation between the noises of seeds A and B, decoded
    /// with deterministic DDIM over <paramref name="steps"/> evenly spaced timesteps (see
    /// <see cref="Interpolation.Interpolate"/>). Returns (frames, C, H, W) on the CPU.
    /// </summary>
    public Tensor Interpolate(long seedA, long seedB, int frames, int steps, SamplerOptions options,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var timesteps = TimestepSelection.EvenlySpaced(Diffusion.Timesteps, steps);
        var inner = progress is null ? null : new SyncProgress<int>(done => progress.Report((done, timesteps.Length)));
        using var result = Interpolation.Interpolate(Diffusion, Model, ImageShape(1), seedA, seedB, frames, timesteps,
            WithSeed(options, seedA), Device, inner, cancellationToken);
        return result.Samples.detach().clone();
    }

    private static SamplerOptions WithSeed(SamplerOptions o, long seed) => new()
    {
        Seed = seed,
        Threshold = o.Threshold,
        DynamicThresholdQuantile = o.DynamicThresholdQuantile,
        DynamicThresholdMax = o.DynamicThresholdMax,
    };

    public void Dispose()
    {
        Model.Dispose();
        Diffusion.Dispose();
    }
}

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
    /// Generates <paramref name="count"/> images in batches of <paramref name="batchSize"/>. Batch i is drawn with
    /// seed (seed + i), so the same seed and batch size give the same images. Returns (count, C, H, W) in [-1, 1] on the CPU.
    /// </summary>
    public Tensor Sample(int count, long seed, int batchSize = 64, bool clipDenoised = true,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        if (count < 1) throw new DdpmException($"--count {count}: must be at least 1");
        if (batchSize < 1) throw new DdpmException($"--batch-size {batchSize}: must be at least 1");
        var parts = new List<Tensor>();
        int batches = (count + batchSize - 1) / batchSize;
        int total = batches * Diffusion.Timesteps;
        try
        {
            for (int b = 0; b < batches; b++)
            {
                int n = Math.Min(batchSize, count - b * batchSize);
                int offset = b * Diffusion.Timesteps;
                var inner = progress is null ? null : new SyncProgress<int>(done => progress.Report((offset + done, total)));
                using var result = AncestralSampler.Sample(Diffusion, Model, ImageShape(n),
                    new SamplerOptions { Seed = seed + b, ClipDenoised = clipDenoised }, Device, inner, cancellationToken);
                parts.Add(result.Samples.detach().clone());
            }
            return cat(parts, 0);
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    public void Dispose()
    {
        Model.Dispose();
        Diffusion.Dispose();
    }
}

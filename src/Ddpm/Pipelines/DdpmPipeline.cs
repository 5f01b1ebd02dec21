using Ddpm.Diffusion;
using Ddpm.Distributed;
using Ddpm.Interop;
using Ddpm.Runs;
using Ddpm.Runtime;
using Ddpm.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Pipelines;

/// <summary>
/// A trained model ready to generate: the network (EMA weights by default) and its diffusion, loaded from a
/// run folder, a checkpoint folder or a weights file inside one, or from another project's format: a diffusers
/// folder or an original DDPM checkpoint (<see cref="PretrainedModel"/>). Needs nothing of the training data. The network is
/// the run's U-Net, or any module with the diffusion's contract given as a <see cref="ModelFactory"/> (required for a
/// run that trained a custom network: its checkpoints hold the state dict only).
/// </summary>
public sealed class DdpmPipeline : IDisposable
{
    /// <summary>The network: x_t (B, C, H, W) and t (B,) int64 in, (B, C or 2C, H, W) out.</summary>
    public nn.Module<Tensor, Tensor, Tensor> Model { get; }
    public GaussianDiffusion Diffusion { get; }
    public TrainConfig Config { get; }
    public string CheckpointDir { get; }
    public long Step { get; }
    public Device Device { get; }

    private DdpmPipeline(nn.Module<Tensor, Tensor, Tensor> model, GaussianDiffusion diffusion, TrainConfig config, string dir, long step, Device device)
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
    /// used unless <paramref name="useEma"/> is false. <paramref name="model"/> builds the network the weights are
    /// loaded into (by state-dict names); null uses the run's U-Net.
    /// </summary>
    public static DdpmPipeline Load(string path, Device device, bool useEma = true, ModelFactory? model = null)
    {
        if (PretrainedModel.IsForeign(path)) return LoadForeign(path, device, model);
        var dir = CheckpointStore.Resolve(path);
        var state = CheckpointStore.ReadState(dir);
        var config = state.Config;
        var create = RunModels.Resolve(config, model, dir);
        string weights = File.Exists(path) ? Path.GetFullPath(path)
            : Path.Combine(dir, useEma ? CheckpointStore.EmaFile : CheckpointStore.ModelFile);
        var network = create();
        try
        {
            CheckpointStore.LoadWeights(network, weights);
            network.to(device);
            network.eval();
            return new DdpmPipeline(network, DiffusionFactory.Diffusion(config), config, dir, state.Step, device);
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A diffusers folder or an original checkpoint (see <see cref="PretrainedModel"/>): the project's U-Net with its
    /// weights (such files hold one set; the EMA choice does not apply) and the diffusion its configuration describes.
    /// </summary>
    private static DdpmPipeline LoadForeign(string path, Device device, ModelFactory? model)
    {
        if (model is not null) throw new DdpmException($"{path}: a diffusers folder or original checkpoint loads into the project's U-Net, not a custom network");
        using var pretrained = PretrainedModel.Open(path);
        var config = pretrained.ToConfig();
        var network = pretrained.CreateNetwork();
        try
        {
            network.to(device);
            network.eval();
            return new DdpmPipeline(network, DiffusionFactory.Diffusion(config), config, pretrained.Source, pretrained.Step, device);
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    /// <summary>(count, C, H, W) of the run's images (the U-Net's, or the data's size the run recorded for a custom network).</summary>
    public long[] ImageShape(int count)
    {
        int channels = Config.Model?.InChannels ?? Config.Channels
            ?? throw new DdpmException($"{CheckpointDir}: the run's configuration records no channel count");
        int size = Config.Model?.ImageSize ?? Config.ImageSize
            ?? throw new DdpmException($"{CheckpointDir}: the run's configuration records no image size");
        return new long[] { count, channels, size, size };
    }

    /// <summary>Refuses what <see cref="Sample"/> would refuse of its counts, so a caller can check them before loading anything.</summary>
    public static void CheckSampleCounts(int count, int batchSize)
    {
        if (count < 1) throw DdpmException.ForSetting("count", $"{count}: must be at least 1");
        if (batchSize < 1) throw DdpmException.ForSetting("batch_size", $"{batchSize}: must be at least 1");
    }

    /// <summary>
    /// Generates <paramref name="count"/> images with <paramref name="sampler"/> (DDPM's ancestral sampler over all T
    /// steps when null), in batches of <paramref name="batchSize"/>. Batch i is drawn with seed (seed + i), so the same
    /// seed, sampler and batch size give the same images. Progress counts denoising steps over all batches.
    /// Returns (count, C, H, W) on the CPU.
    /// </summary>
    public Tensor Sample(int count, long seed, ISampler? sampler = null, int batchSize = 64,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        var parts = new List<Tensor>();
        try
        {
            foreach (var batch in SampleBatches(count, seed, Shard.Whole, sampler, batchSize, progress, cancellationToken))
                parts.Add(batch.Images);
            return cat(parts, 0);
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    /// <summary>
    /// The batches of <see cref="Sample"/> that <paramref name="shard"/> owns (batch b when b mod shard count = shard
    /// index; see <see cref="Shard"/>), drawn one at a time as the caller enumerates, each with its batch number and the
    /// global index of its first image: image k of batch b is image b * batchSize + k of <see cref="Sample"/> with the
    /// same count, seed, sampler and batch size, equal to it element for element. The shards of one job together yield
    /// every batch once. Progress counts denoising steps over this shard's batches. The counts are checked before the
    /// first batch is drawn.
    /// </summary>
    public IEnumerable<SampleBatch> SampleBatches(int count, long seed, Shard shard, ISampler? sampler = null, int batchSize = 64,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(shard);
        CheckSampleCounts(count, batchSize);
        sampler ??= new AncestralSampler();
        return Draw(count, seed, shard, sampler, batchSize, progress, cancellationToken);
    }

    private IEnumerable<SampleBatch> Draw(int count, long seed, Shard shard, ISampler sampler, int batchSize,
        IProgress<(int Done, int Total)>? progress, CancellationToken cancellationToken)
    {
        int steps = sampler.Timesteps(Diffusion.Schedule).Length;
        var batches = shard.Batches(count, batchSize).ToArray();
        int total = batches.Length * steps;
        for (int k = 0; k < batches.Length; k++)
        {
            int b = batches[k];
            int n = Math.Min(batchSize, count - b * batchSize);
            int offset = k * steps;
            var inner = progress is null ? null : new SyncProgress<int>(done => progress.Report((offset + done, total)));
            Tensor images;
            using (var result = sampler.Sample(Diffusion, Model, ImageShape(n), SamplingRun.Seeded(seed + b), Device, inner, cancellationToken))
                images = result.Samples.detach().clone();
            yield return new SampleBatch(b, b * batchSize, images);
        }
    }

    /// <summary>
    /// <paramref name="frames"/> images along the spherical interpolation between the noises of seeds A and B, each
    /// decoded by <paramref name="sampler"/> (50-step deterministic DDIM when null; see <see cref="Interpolation.Interpolate"/>).
    /// Returns (frames, C, H, W) on the CPU.
    /// </summary>
    public Tensor Interpolate(long seedA, long seedB, int frames, ISampler? sampler = null,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        sampler ??= new DdimSampler();
        int steps = sampler.Timesteps(Diffusion.Schedule).Length;
        var inner = progress is null ? null : new SyncProgress<int>(done => progress.Report((done, steps)));
        using var result = Interpolation.Interpolate(Diffusion, Model, sampler, ImageShape(1), seedA, seedB, frames,
            Device, inner, cancellationToken);
        return result.Samples.detach().clone();
    }

    public void Dispose()
    {
        Model.Dispose();
        Diffusion.Dispose();
    }
}

/// <summary>
/// One batch of generated images (n, C, H, W) on the CPU, owned by the receiver: batch <paramref name="Batch"/>, whose
/// first image has the global index <paramref name="FirstIndex"/> in the unsharded output.
/// </summary>
public sealed record SampleBatch(int Batch, int FirstIndex, Tensor Images) : IDisposable
{
    public void Dispose() => Images.Dispose();
}

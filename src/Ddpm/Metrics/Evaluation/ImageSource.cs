using Ddpm.Data;
using Ddpm.Distributed;
using Ddpm.Interop;
using Ddpm.Pipelines;
using Ddpm.Runs;
using static TorchSharp.torch;

namespace Ddpm.Metrics.Evaluation;

/// <summary>What one side of a comparison is.</summary>
public enum ImageSourceKind
{
    /// <summary>Real images: an image folder or an IDX file.</summary>
    Images,
    /// <summary>Samples generated on the fly from a checkpoint.</summary>
    Checkpoint,
    /// <summary>Precomputed feature statistics (a pytorch-fid <c>.npz</c>): no images, only mu and sigma.</summary>
    Statistics,
}

/// <summary>How to open a source.</summary>
public sealed class ImageSourceOptions
{
    /// <summary>Images to use: the first N of a data set, or N samples from a checkpoint (required there).</summary>
    public int? Count { get; init; }

    /// <summary>Seed of the generated samples (batch i uses seed + i, as <see cref="DdpmPipeline.Sample"/>).</summary>
    public long Seed { get; init; }

    /// <summary>Images generated at once from a checkpoint.</summary>
    public int SampleBatchSize { get; init; } = 64;

    /// <summary>Generate with the EMA weights (the default) or the raw ones.</summary>
    public bool UseEma { get; init; } = true;

    public Device? Device { get; init; }

    /// <summary>The network a checkpoint is loaded into; null uses the run's U-Net (required for a custom network's run).</summary>
    public ModelFactory? Model { get; init; }

    /// <summary>
    /// Draws (n, C, H, W) samples in [-1, 1] with seed s from a loaded pipeline; null uses the pipeline's default
    /// (ancestral over all T steps, x_0 clipped). The CLI passes the chosen sampler here.
    /// </summary>
    public Func<DdpmPipeline, int, long, CancellationToken, Tensor>? Generate { get; init; }

    /// <summary>
    /// Yield only this shard's images (see <see cref="Distributed.Shard"/>): of a data set (after cutting to
    /// <see cref="Count"/>), the blocks b of <see cref="ShardBlockSize"/> consecutive images with b mod count = index;
    /// of a checkpoint, the sample batches b (of <see cref="SampleBatchSize"/>) with b mod count = index, the images one
    /// process draws for them. Null: all.
    /// </summary>
    public Shard? Shard { get; init; }

    /// <summary>
    /// Images per unit of a data set's <see cref="Shard"/>. Give the batch size the images will be read in: a data set's
    /// batches never cross a multiple of the batch size, so each shard then reads the very batches one process reads,
    /// and a feature extractor gives the same features to the last bit (its float32 results can depend on which
    /// images share a batch).
    /// </summary>
    public int ShardBlockSize { get; init; } = 1;
}

/// <summary>
/// One side of a distance: real images, a checkpoint to sample from, or precomputed statistics. Yields images
/// batch by batch so that 50,000 samples never sit in memory at once.
/// </summary>
public abstract class ImageSource : IDisposable
{
    protected ImageSource(string path, ImageSourceKind kind)
    {
        Path = path;
        Kind = kind;
    }

    /// <summary>The path the user gave.</summary>
    public string Path { get; }
    public ImageSourceKind Kind { get; }

    /// <summary>Number of images the source yields (for statistics: the count stored, 0 when unknown).</summary>
    public abstract long Count { get; }

    /// <summary>The shard of the source this yields (<see cref="Distributed.Shard.Whole"/>: all of it).</summary>
    public Shard Shard { get; protected init; } = Shard.Whole;

    /// <summary>Number of images of the whole source, all shards together (<see cref="Count"/> when not sharded).</summary>
    public virtual long SourceCount => Count;

    /// <summary>
    /// The images as float32 (n, C, H, W) CPU batches in [-1, 1], each owned by the caller. Reports images
    /// produced so far. Not available for <see cref="ImageSourceKind.Statistics"/>.
    /// </summary>
    public abstract IEnumerable<Tensor> Batches(int batchSize, IProgress<int>? progress, CancellationToken cancellationToken);

    /// <summary>
    /// Opens <paramref name="path"/>: a <c>.npz</c> file is statistics; a run folder, checkpoint folder or
    /// <c>.safetensors</c> file inside one is a checkpoint; anything else is read as data, every image at its own size as
    /// pytorch-fid reads it (no crop, no resample: each extractor brings images to its own input size): an IDX file (or a
    /// folder holding one, see <see cref="DatasetLoader.FindIdxImages"/>) as stored, any other folder as an
    /// <see cref="ImageFolderSource"/>.
    /// </summary>
    public static ImageSource Open(string path, ImageSourceOptions? options = null)
    {
        options ??= new ImageSourceOptions();
        if (string.IsNullOrWhiteSpace(path)) throw new DdpmException("image source: empty path");
        if (options.Count is < 1) throw DdpmException.ForSetting("count", $"{options.Count}: must be at least 1");
        if (options.ShardBlockSize < 1) throw DdpmException.ForSetting("batch_size", $"{options.ShardBlockSize}: must be at least 1");
        if (path.EndsWith(".npz", StringComparison.OrdinalIgnoreCase))
        {
            if (!File.Exists(path)) throw new DdpmException($"statistics file not found: {path}");
            if (options.Shard is { IsWhole: false }) throw new DdpmException($"{path}: statistics cannot be split into shards");
            return new StatisticsSource(path, FeatureStatistics.LoadNpz(path));
        }
        if (IsCheckpointPath(path))
        {
            if (options.Count is null)
                throw new DdpmException($"{path} is a checkpoint: give count, the number of images to generate from it");
            return new CheckpointSource(path, options);
        }
        if (!File.Exists(path) && !Directory.Exists(path)) throw new DdpmException($"not found: {path}");
        if (Directory.Exists(path) && DatasetLoader.FindIdxImages(path) is null)
            return new ImageFolderSource(path, options.Count, options.Shard, options.ShardBlockSize);
        return new DatasetSource(path, DatasetLoader.Load(path, maxCount: options.Count), options.Shard, options.ShardBlockSize);
    }

    /// <summary>Wraps images already in memory (N, C, H, W) in [-1, 1]; the source takes ownership of the dataset.</summary>
    public static ImageSource FromDataset(ImageDataset data, string description) => new DatasetSource(description, data);

    /// <summary>Images (N, C, H, W) in [-1, 1] that stay the caller's: the source neither copies nor disposes them.</summary>
    public static ImageSource FromTensor(Tensor images, string description) => new TensorSource(description, images);

    /// <summary>
    /// True for a run folder, a checkpoint folder, a .safetensors file inside a checkpoint folder, a diffusers folder, or an
    /// original checkpoint (.ckpt, .pth, .pt).
    /// </summary>
    public static bool IsCheckpointPath(string path)
    {
        if (Directory.Exists(path) && DiffusersFolder.Holds(path)) return true;
        if (File.Exists(path) && System.IO.Path.GetExtension(path).ToLowerInvariant() is ".ckpt" or ".pth" or ".pt") return true;
        if (File.Exists(path))
            return path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)
                && File.Exists(System.IO.Path.Combine(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!, CheckpointStore.StateFile));
        return Directory.Exists(path)
            && (File.Exists(System.IO.Path.Combine(path, CheckpointStore.StateFile))
                || Directory.Exists(System.IO.Path.Combine(path, CheckpointStore.Folder)));
    }

    public virtual void Dispose() => GC.SuppressFinalize(this);

    internal static void CheckBatchSize(int batchSize)
    {
        if (batchSize < 1) throw DdpmException.ForSetting("batch_size", $"{batchSize}: must be at least 1");
    }
}

/// <summary>Precomputed mu and sigma.</summary>
public sealed class StatisticsSource : ImageSource
{
    public StatisticsSource(string path, FeatureStatistics statistics) : base(path, ImageSourceKind.Statistics) => Statistics = statistics;

    public FeatureStatistics Statistics { get; }
    public override long Count => Statistics.Count;

    public override IEnumerable<Tensor> Batches(int batchSize, IProgress<int>? progress, CancellationToken cancellationToken) =>
        throw new DdpmException($"{Path}: holds only feature statistics, no images (KID, IS and class histograms need images)");
}

/// <summary>Real images from an IDX file (or any dataset in memory); owns the dataset.</summary>
public sealed class DatasetSource : ImageSource
{
    private readonly int _block;

    /// <summary>
    /// The images of <paramref name="data"/>, only those of <paramref name="shard"/> when given: the blocks b of
    /// <paramref name="blockSize"/> consecutive images with b mod count = index.
    /// </summary>
    public DatasetSource(string path, ImageDataset data, Shard? shard = null, int blockSize = 1) : base(path, ImageSourceKind.Images)
    {
        if (blockSize < 1) throw DdpmException.ForSetting("batch_size", $"{blockSize}: must be at least 1");
        Data = data;
        Shard = shard ?? Shard.Whole;
        _block = blockSize;
    }

    public ImageDataset Data { get; }
    public override long Count => Shard.ImagesInBatches(Data.Count, _block);
    public override long SourceCount => Data.Count;

    public override IEnumerable<Tensor> Batches(int batchSize, IProgress<int>? progress, CancellationToken cancellationToken)
    {
        if (Shard.IsWhole) return TensorSource.Slices(Data.Images, batchSize, progress, cancellationToken);
        return Strided(batchSize, progress, cancellationToken);
    }

    /// <summary>This shard's blocks, each cut into batches that stay inside it (one batch when the sizes agree).</summary>
    private IEnumerable<Tensor> Strided(int batchSize, IProgress<int>? progress, CancellationToken cancellationToken)
    {
        CheckBatchSize(batchSize);
        int done = 0;
        foreach (int b in Shard.Batches(Data.Count, _block))
        {
            int n = Math.Min(_block, Data.Count - b * _block);
            using var block = Data.Images.narrow(0, (long)b * _block, n);
            int before = done;
            var inner = progress is null ? null : new Runtime.SyncProgress<int>(k => progress.Report(before + k));
            foreach (var batch in TensorSource.Slices(block, batchSize, inner, cancellationToken)) yield return batch;
            done += n;
        }
    }

    public override void Dispose()
    {
        Data.Dispose();
        base.Dispose();
    }
}

/// <summary>Images in a tensor the caller keeps.</summary>
public sealed class TensorSource : ImageSource
{
    private readonly Tensor _images;

    public TensorSource(string description, Tensor images) : base(description, ImageSourceKind.Images)
    {
        ArgumentNullException.ThrowIfNull(images);
        _images = images;
    }

    public override long Count => _images.shape[0];

    public override IEnumerable<Tensor> Batches(int batchSize, IProgress<int>? progress, CancellationToken cancellationToken) =>
        Slices(_images, batchSize, progress, cancellationToken);

    /// <summary>Consecutive float32 CPU copies of at most <paramref name="batchSize"/> images, each owned by the caller.</summary>
    internal static IEnumerable<Tensor> Slices(Tensor images, int batchSize, IProgress<int>? progress, CancellationToken cancellationToken)
    {
        CheckBatchSize(batchSize);
        long count = images.shape[0];
        for (long start = 0; start < count; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            long n = Math.Min(batchSize, count - start);
            Tensor batch;
            using (NewDisposeScope())
                batch = images.narrow(0, start, n).to(ScalarType.Float32, CPU).clone().MoveToOuterDisposeScope();
            batch.DetachFromDisposeScope();
            progress?.Report((int)(start + n));
            yield return batch;
        }
    }
}

/// <summary>Samples generated from a checkpoint, batch by batch.</summary>
public sealed class CheckpointSource : ImageSource
{
    private readonly ImageSourceOptions _options;
    private DdpmPipeline? _pipeline;

    public CheckpointSource(string path, ImageSourceOptions options) : base(path, ImageSourceKind.Checkpoint)
    {
        _options = options;
        Shard = options.Shard ?? Shard.Whole;
        Pipeline = DdpmPipeline.Load(path, options.Device ?? CPU, options.UseEma, options.Model);
        _pipeline = Pipeline;
    }

    public DdpmPipeline Pipeline { get; }
    public override long Count => Shard.ImagesInBatches(_options.Count ?? 0, Math.Max(1, _options.SampleBatchSize));
    public override long SourceCount => _options.Count ?? 0;

    /// <summary>
    /// Generates in batches of <see cref="ImageSourceOptions.SampleBatchSize"/> (batch i seeded with seed + i, so the
    /// images equal those of <c>ddpm sample</c> with the same seed and batch size), re-cut to <paramref name="batchSize"/>.
    /// </summary>
    public override IEnumerable<Tensor> Batches(int batchSize, IProgress<int>? progress, CancellationToken cancellationToken)
    {
        CheckBatchSize(batchSize);
        int total = _options.Count ?? 0;
        int per = Math.Max(1, _options.SampleBatchSize);
        var generate = _options.Generate ?? ((p, n, seed, ct) => p.Sample(n, seed, null, n, null, ct));
        int done = 0;
        foreach (int b in Shard.Batches(total, per))
        {
            cancellationToken.ThrowIfCancellationRequested();
            int n = Math.Min(per, total - b * per);
            using var images = generate(Pipeline, n, _options.Seed + b, cancellationToken);
            for (int start = 0; start < n; start += batchSize)
            {
                int m = Math.Min(batchSize, n - start);
                Tensor part;
                using (NewDisposeScope())
                    part = images.narrow(0, start, m).to(CPU).to(ScalarType.Float32).clone().MoveToOuterDisposeScope();
                part.DetachFromDisposeScope();
                done += m;
                progress?.Report(done);
                yield return part;
            }
        }
    }

    public override void Dispose()
    {
        _pipeline?.Dispose();
        _pipeline = null;
        base.Dispose();
    }
}

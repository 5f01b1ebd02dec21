using Ddpm.Data;
using Ddpm.Distributed;
using Ddpm.Imaging;
using static TorchSharp.torch;

namespace Ddpm.Metrics.Evaluation;

/// <summary>
/// The images of a folder as pytorch-fid reads them: every file at its own size and with its own stored pixels
/// (<see cref="ImageIO.LoadDroppingAlpha"/>), never cropped or resampled here, so that each extractor applies its own
/// preprocessing to the original image (the FID Inception network stretches it to 299x299; the offline classifier to
/// 28x28). The training data loader's square crop and resample (<see cref="ImageFolderReader"/>) is not involved.
/// <para>Files are those <see cref="ImageFolderReader.ListImages"/> finds (.png, .jpg, .jpeg in every subfolder), in its
/// order. They are decoded batch by batch, so a large folder never sits in memory at once. A batch holds consecutive
/// images of one shape (channels, height, width): a folder may mix sizes and grey with RGB files, at the cost of
/// smaller batches where the shape changes. A batch never crosses a multiple of the batch size in the folder's order
/// (image j goes with the images of the same j / batch size), so that a shard reading whole blocks of that size
/// (<see cref="ImageSourceOptions.Shard"/>) reads the very batches one process reads. Grey files stay one channel; the
/// extractors convert as they need.</para>
/// </summary>
public sealed class ImageFolderSource : ImageSource
{
    private readonly IReadOnlyList<string> _files;

    /// <summary>
    /// The folder's images, only the first <paramref name="maxCount"/> in order when given, and of those only the ones
    /// of <paramref name="shard"/> when given: the blocks b of <paramref name="blockSize"/> consecutive images with
    /// b mod count = index.
    /// </summary>
    public ImageFolderSource(string folder, int? maxCount = null, Shard? shard = null, int blockSize = 1) : base(folder, ImageSourceKind.Images)
    {
        if (blockSize < 1) throw DdpmException.ForSetting("batch_size", $"{blockSize}: must be at least 1");
        if (maxCount is < 1) throw new DdpmException($"max count {maxCount}: must be at least 1");
        var files = ImageFolderReader.ListImages(folder);
        if (files.Count == 0)
            throw new DdpmException($"no images found in {folder} (looked for .png, .jpg, .jpeg in all subfolders)");
        var used = maxCount is int m && m < files.Count ? files.Take(m).ToList() : files;
        Shard = shard ?? Shard.Whole;
        _sourceCount = used.Count;
        _indices = Enumerable.Range(0, used.Count).Where(j => Shard.Owns(j / blockSize)).ToArray();
        _files = Shard.IsWhole ? used : _indices.Select(j => used[j]).ToList();
    }

    /// <summary>The index in the unsharded folder of each file used.</summary>
    private readonly int[] _indices;

    private readonly long _sourceCount;

    public override long SourceCount => _sourceCount;

    /// <summary>The image files used (this shard's), in order.</summary>
    public IReadOnlyList<string> Files => _files;

    public override long Count => _files.Count;

    public override IEnumerable<Tensor> Batches(int batchSize, IProgress<int>? progress, CancellationToken cancellationToken)
    {
        CheckBatchSize(batchSize);
        var pending = new List<Tensor>();
        int done = 0;
        try
        {
            for (int k = 0; k < _files.Count; k++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var image = ImageIO.LoadDroppingAlpha(_files[k]).DetachFromDisposeScope();
                bool newBlock = k > 0 && _indices[k] / batchSize != _indices[k - 1] / batchSize;
                if (pending.Count > 0 && (pending.Count == batchSize || newBlock || !pending[0].shape.SequenceEqual(image.shape)))
                {
                    done += pending.Count;
                    yield return Stack(pending, progress, done);
                }
                pending.Add(image);
            }
            if (pending.Count > 0)
            {
                done += pending.Count;
                yield return Stack(pending, progress, done);
            }
        }
        finally
        {
            foreach (var t in pending) t.Dispose();
        }
    }

    /// <summary>Stacks the pending images into one caller-owned (n, C, H, W) batch, frees them and reports progress.</summary>
    private static Tensor Stack(List<Tensor> pending, IProgress<int>? progress, int done)
    {
        Tensor batch;
        using (NewDisposeScope())
            batch = stack(pending, 0).MoveToOuterDisposeScope();
        batch.DetachFromDisposeScope();
        foreach (var t in pending) t.Dispose();
        pending.Clear();
        progress?.Report(done);
        return batch;
    }
}

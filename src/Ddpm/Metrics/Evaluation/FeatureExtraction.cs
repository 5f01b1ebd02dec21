using static TorchSharp.torch;

namespace Ddpm.Metrics.Evaluation;

/// <summary>Runs a feature extractor over many images in batches.</summary>
public static class FeatureExtraction
{
    /// <summary>
    /// Features (N, D) and logits (N, K; null when the extractor has no classifier head) of images (N, C, H, W) in [-1, 1],
    /// extracted <paramref name="batchSize"/> at a time and concatenated as float32 CPU tensors into the caller's scope.
    /// Reports the number of images done after each batch.
    /// </summary>
    public static FeatureBatch ExtractAll(IFeatureExtractor extractor, Tensor images, int batchSize = 250,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(extractor);
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4) throw new DdpmException($"images must be (N, C, H, W); got shape [{string.Join(", ", images.shape)}]");
        if (images.shape[0] < 1) throw new DdpmException("no images to extract features from");
        using var source = ImageSource.FromTensor(images, "tensor");
        int total = (int)images.shape[0];
        var inner = progress is null ? null : new Runtime.SyncProgress<int>(done => progress.Report((done, total)));
        using var collected = FeatureCollector.Collect(extractor, source, batchSize, inner, cancellationToken);
        return new FeatureBatch(collected.Features.alias(), collected.Logits?.alias());
    }
}

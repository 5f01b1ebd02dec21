using static TorchSharp.torch;

namespace Ddpm.Metrics;

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
        if (batchSize < 1) throw new DdpmException($"batch size {batchSize}: must be at least 1");
        if (images.dim() != 4) throw new DdpmException($"images must be (N, C, H, W); got shape [{string.Join(", ", images.shape)}]");
        long n = images.shape[0];
        if (n < 1) throw new DdpmException("no images to extract features from");
        var features = new List<Tensor>();
        var logits = new List<Tensor>();
        try
        {
            for (long start = 0; start < n; start += batchSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                long m = Math.Min(batchSize, n - start);
                var batch = extractor.Extract(images.narrow(0, start, m));
                features.Add(batch.Features.to(ScalarType.Float32, CPU).DetachFromDisposeScope());
                if (batch.Logits is not null) logits.Add(batch.Logits.to(ScalarType.Float32, CPU).DetachFromDisposeScope());
                progress?.Report(((int)(start + m), (int)n));
            }
            var f = cat(features, 0);
            var l = logits.Count > 0 ? cat(logits, 0) : null;
            return new FeatureBatch(f, l);
        }
        finally
        {
            foreach (var t in features) t.Dispose();
            foreach (var t in logits) t.Dispose();
        }
    }
}

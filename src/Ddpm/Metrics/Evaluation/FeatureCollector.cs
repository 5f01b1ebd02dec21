using static TorchSharp.torch;

namespace Ddpm.Metrics.Evaluation;

/// <summary>The features (and logits, when the extractor classifies) of every image of a source, float32 on the CPU.</summary>
public sealed class CollectedFeatures : IDisposable
{
    public CollectedFeatures(Tensor features, Tensor? logits)
    {
        Features = features;
        Logits = logits;
    }

    /// <summary>(N, D) features.</summary>
    public Tensor Features { get; }

    /// <summary>(N, K) logits, or null.</summary>
    public Tensor? Logits { get; }

    public long Count => Features.shape[0];

    /// <summary>Mean and N-1 covariance in float64.</summary>
    public FeatureStatistics Statistics() => FeatureStatistics.FromFeatures(Features);

    public void Dispose()
    {
        Features.Dispose();
        Logits?.Dispose();
    }
}

/// <summary>Runs a feature extractor over a source batch by batch, each inside its own dispose scope.</summary>
public static class FeatureCollector
{
    /// <summary>
    /// Extracts features of all images of <paramref name="source"/> in batches of <paramref name="batchSize"/>.
    /// Progress reports images done (generation and extraction together for a checkpoint).
    /// </summary>
    public static CollectedFeatures Collect(IFeatureExtractor extractor, ImageSource source, int batchSize,
        IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(extractor);
        ArgumentNullException.ThrowIfNull(source);
        var features = new List<Tensor>();
        var logits = new List<Tensor>();
        int done = 0;
        try
        {
            foreach (var batch in source.Batches(batchSize, null, cancellationToken))
            {
                using (batch)
                using (NewDisposeScope())
                {
                    var f = extractor.Extract(batch.to(extractor.Device));
                    features.Add(f.Features.detach().to(CPU).to(ScalarType.Float32).clone().DetachFromDisposeScope());
                    if (f.Logits is not null)
                        logits.Add(f.Logits.detach().to(CPU).to(ScalarType.Float32).clone().DetachFromDisposeScope());
                }
                done += (int)features[^1].shape[0];
                progress?.Report(done);
            }
            if (features.Count == 0) throw new DdpmException($"{source.Path}: no images");
            return new CollectedFeatures(cat(features, 0).DetachFromDisposeScope(),
                logits.Count == features.Count ? cat(logits, 0).DetachFromDisposeScope() : null);
        }
        finally
        {
            foreach (var t in features) t.Dispose();
            foreach (var t in logits) t.Dispose();
        }
    }
}

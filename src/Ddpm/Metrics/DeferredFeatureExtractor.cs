using static TorchSharp.torch;

namespace Ddpm.Metrics;

/// <summary>
/// A feature extractor whose network is loaded the first time something other than its <see cref="Name"/> is asked
/// for. A comparison of two precomputed statistics (<c>.npz</c>) reads no image, so it never loads the network and
/// needs no weights file; one with images loads it once.
/// </summary>
public sealed class DeferredFeatureExtractor : IFeatureExtractor
{
    private Func<IFeatureExtractor>? _load;
    private IFeatureExtractor? _loaded;

    /// <summary>
    /// <paramref name="name"/> must be the name the loaded extractor will report (it is written beside scores computed
    /// without loading); <paramref name="load"/> is called at most once. <paramref name="featureDims"/>, when known from
    /// metadata, is the width the loaded extractor will report: it lets statistics be labelled without loading.
    /// </summary>
    public DeferredFeatureExtractor(string name, Func<IFeatureExtractor> load, int? featureDims = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(load);
        Name = name;
        _load = load;
        KnownFeatureDims = featureDims;
    }

    public string Name { get; }

    /// <summary>The feature width known without loading (from the extractor's metadata); null when unknown.</summary>
    public int? KnownFeatureDims { get; }

    /// <summary>True once the network has been loaded.</summary>
    public bool IsLoaded => _loaded is not null;

    /// <summary>Loads the network now (if not yet), e.g. to report a missing weights file before any work starts.</summary>
    public IFeatureExtractor Load()
    {
        if (_loaded is not null) return _loaded;
        var load = _load ?? throw new ObjectDisposedException(nameof(DeferredFeatureExtractor));
        var loaded = load();
        if (loaded.Name != Name)
        {
            loaded.Dispose();
            throw new InvalidOperationException($"the deferred extractor was named {Name} but loaded {loaded.Name}");
        }
        _loaded = loaded;
        return loaded;
    }

    public int FeatureDims => Load().FeatureDims;
    public int Classes => Load().Classes;
    public Device Device => Load().Device;
    public FeatureBatch Extract(Tensor images) => Load().Extract(images);

    public void Dispose()
    {
        _loaded?.Dispose();
        _loaded = null;
        _load = null;
    }
}

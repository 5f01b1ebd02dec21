using System.Text.Json;
using System.Text.Json.Serialization;
using static TorchSharp.torch;

namespace Ddpm.Metrics.Evaluation;

/// <summary>What to compute besides the Frechet distance.</summary>
public sealed class DistanceOptions
{
    /// <summary>Name of the distance in reports: "fid" for Inception pool3, "fd_classifier" for the offline classifier.</summary>
    public string Metric { get; init; } = "fid";

    /// <summary>Images per feature-extraction batch.</summary>
    public int BatchSize { get; init; } = 50;

    /// <summary>Also compute KID (needs images on both sides).</summary>
    public bool Kid { get; init; }
    public int KidSubsets { get; init; } = KernelInceptionDistance.DefaultSubsets;
    public int KidSubsetSize { get; init; } = KernelInceptionDistance.DefaultSubsetSize;

    /// <summary>Score every side with images by the extractor's classes: (Inception) Score and class histogram.</summary>
    public bool ClassScores { get; init; }
    public int Splits { get; init; } = InceptionScore.DefaultSplits;

    /// <summary>
    /// Real data for the floor: the same distance between two disjoint random real sets of A's size. Null: use a side
    /// holding real images when it has at least twice as many images as A; otherwise no floor.
    /// </summary>
    public string? FloorData { get; init; }
    public bool Floor { get; init; }

    /// <summary>Seed of KID subsets and of the floor's split.</summary>
    public long Seed { get; init; }
}

/// <summary>One side of a comparison in a report.</summary>
public sealed record SideReport(string Path, string Kind, long Count)
{
    /// <summary>(Inception) Score over the side's images, when asked for and available.</summary>
    public MetricEstimate? Score { get; init; }

    /// <summary>Images per predicted class (classifiers with at most 100 classes).</summary>
    public long[]? ClassCounts { get; init; }

    /// <summary>Total variation distance of the class histogram from uniform (0 = perfectly balanced).</summary>
    public double? ClassImbalance { get; init; }
}

/// <summary>The real-vs-real floor: the distance a perfect model would reach at this sample count.</summary>
public sealed record FloorReport(string Data, long Count, double Distance);

/// <summary>Everything <see cref="DistanceEvaluation.Run"/> measured; written as JSON by the CLI.</summary>
public sealed record DistanceReport(string Metric, string Extractor, int Dims, SideReport A, SideReport B, double Distance)
{
    public MetricEstimate? Kid { get; init; }
    /// <summary>Total variation distance between the class histograms of A and B (classifiers with at most 100 classes).</summary>
    public double? ClassHistogramDistance { get; init; }
    public FloorReport? Floor { get; init; }
    /// <summary>Why there is no floor, when one was asked for and could not be computed.</summary>
    public string? FloorUnavailable { get; init; }
    public double Seconds { get; init; }

    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);
}

/// <summary>
/// Frechet distance (and optionally KID, scores, class histograms and the real-vs-real floor) between two
/// sources in the features of one extractor. With the FID Inception network and pool3 features this is FID
/// computed as pytorch-fid does.
/// </summary>
public static class DistanceEvaluation
{
    /// <summary>Progress: (stage, images done, images in the stage).</summary>
    public static DistanceReport Run(IFeatureExtractor extractor, ImageSource a, ImageSource b, DistanceOptions options,
        IProgress<(string Stage, long Done, long Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(extractor);
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(options);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        CheckStatisticsFitTheFeatures(extractor, a, b);
        using var fa = CollectOrNull(extractor, a, "A", options, progress, cancellationToken);
        using var fb = CollectOrNull(extractor, b, "B", options, progress, cancellationToken);
        var sa = fa?.Statistics() ?? ((StatisticsSource)a).Statistics;
        var sb = fb?.Statistics() ?? ((StatisticsSource)b).Statistics;
        if (sa.Dim != sb.Dim)
            throw new DdpmException($"{a.Path} has {sa.Dim}-dimensional features, {b.Path} has {sb.Dim}: compare statistics of the same feature layer");
        double distance = FrechetDistance.Compute(sa, sb);

        MetricEstimate? kid = null;
        if (options.Kid)
        {
            if (fa is null || fb is null) throw new DdpmException("KID needs images (or a checkpoint) on both sides, not .npz statistics");
            kid = KernelInceptionDistance.Compute(fa.Features, fb.Features, options.KidSubsets,
                (int)Math.Min(options.KidSubsetSize, Math.Min(fa.Count, fb.Count)), (int)options.Seed);
        }

        FloorReport? floor = null;
        string? floorMissing = null;
        if (options.Floor)
            (floor, floorMissing) = ComputeFloor(extractor, a, b, fa, fb, sa.Count, options, progress, cancellationToken);

        var sideA = Side(a, fa, sa.Count, extractor, options);
        var sideB = Side(b, fb, sb.Count, extractor, options);
        double? classTv = sideA.ClassCounts is long[] ca && sideB.ClassCounts is long[] cb
            ? new ClassHistogram(ca).TotalVariation(new ClassHistogram(cb)) : null;
        return new DistanceReport(options.Metric, FeaturesLabel(extractor, a, b, sa.Dim), sa.Dim, sideA, sideB, distance)
        {
            ClassHistogramDistance = classTv,
            Kid = kid,
            Floor = floor,
            FloorUnavailable = floorMissing,
            Seconds = Math.Round(clock.Elapsed.TotalSeconds, 1),
        };
    }

    /// <summary>
    /// Before any feature is computed: two statistics must have one dimension, and statistics compared with images must
    /// have the extractor's; each error names the files.
    /// </summary>
    private static void CheckStatisticsFitTheFeatures(IFeatureExtractor extractor, ImageSource a, ImageSource b)
    {
        if (a is StatisticsSource x && b is StatisticsSource y)
        {
            if (x.Statistics.Dim != y.Statistics.Dim)
                throw new DdpmException($"{a.Path} holds {x.Statistics.Dim}-dimensional statistics, {b.Path} holds {y.Statistics.Dim}-dimensional ones: compare statistics of the same feature layer");
            return;
        }
        foreach (var side in new[] { a, b })
            if (side is StatisticsSource s && s.Statistics.Dim != extractor.FeatureDims)
                throw new DdpmException($"{side.Path} holds {s.Statistics.Dim}-dimensional statistics, but {extractor.Name} gives {extractor.FeatureDims}-dimensional features for {(side == a ? b : a).Path}: compare statistics of the same feature layer");
    }

    /// <summary>
    /// What the features are: the extractor's name when it ran, or when two statistics have the width its metadata
    /// promises; otherwise the statistics' width only, never a network they cannot come from.
    /// </summary>
    internal static string FeaturesLabel(IFeatureExtractor extractor, ImageSource a, ImageSource b, int dims)
    {
        if (a.Kind != ImageSourceKind.Statistics || b.Kind != ImageSourceKind.Statistics) return extractor.Name;
        int? known = extractor is DeferredFeatureExtractor { IsLoaded: false } deferred ? deferred.KnownFeatureDims : extractor.FeatureDims;
        if (known == dims) return extractor.Name;
        return known is int k ? $"unknown {dims}-d features (not {extractor.Name}, which gives {k})" : $"unknown {dims}-d features";
    }

    /// <summary>Features of every image of a source; null for precomputed statistics.</summary>
    public static CollectedFeatures? CollectOrNull(IFeatureExtractor extractor, ImageSource source, string stage, DistanceOptions options,
        IProgress<(string Stage, long Done, long Total)>? progress, CancellationToken cancellationToken)
    {
        if (source is StatisticsSource) return null;
        var inner = progress is null ? null : new Runtime.SyncProgress<int>(done => progress.Report((stage, done, source.Count)));
        return FeatureCollector.Collect(extractor, source, options.BatchSize, inner, cancellationToken);
    }

    private static SideReport Side(ImageSource source, CollectedFeatures? features, long statsCount, IFeatureExtractor extractor, DistanceOptions options)
    {
        var report = new SideReport(source.Path, source.Kind.ToString().ToLowerInvariant(), features?.Count ?? statsCount);
        if (!options.ClassScores || features?.Logits is null) return report;
        MetricEstimate? score = features.Count >= options.Splits ? InceptionScore.FromLogits(features.Logits, options.Splits) : null;
        if (extractor.Classes is < 2 or > 100) return report with { Score = score };
        var histogram = ClassHistogram.FromLogits(features.Logits);
        return report with { Score = score, ClassCounts = histogram.Counts, ClassImbalance = histogram.TotalVariationFromUniform() };
    }

    private static (FloorReport?, string?) ComputeFloor(IFeatureExtractor extractor, ImageSource a, ImageSource b,
        CollectedFeatures? fa, CollectedFeatures? fb, long count, DistanceOptions options,
        IProgress<(string Stage, long Done, long Total)>? progress, CancellationToken cancellationToken)
    {
        if (count < 2) return (null, $"A's image count is unknown ({a.Path} holds only statistics)");
        if (options.FloorData is not null)
        {
            using var real = ImageSource.Open(options.FloorData, new ImageSourceOptions { Count = (int)(2 * count) });
            if (real.Kind != ImageSourceKind.Images) return (null, $"floor_data {options.FloorData}: must be real images (an IDX file or image folder)");
            if (real.Count < 2 * count) return (null, $"floor_data {options.FloorData}: has {real.Count} images, the floor needs {2 * count}");
            using var fr = CollectOrNull(extractor, real, "floor", options, progress, cancellationToken)!;
            return (new FloorReport(options.FloorData, count, DomainScores.RealFloor(fr.Features, (int)count, options.Seed)), null);
        }
        foreach (var (side, f) in new[] { (b, fb), (a, fa) })
            if (side.Kind == ImageSourceKind.Images && f is not null && f.Count >= 2 * count)
                return (new FloorReport(side.Path, count, DomainScores.RealFloor(f.Features, (int)count, options.Seed)), null);
        return (null, $"no real image set with at least {2 * count} images among the inputs; give floor_data");
    }
}

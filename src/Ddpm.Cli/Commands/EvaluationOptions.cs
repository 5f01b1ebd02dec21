using System.CommandLine;
using Ddpm.IO;
using Ddpm.Metrics;
using Ddpm.Metrics.Evaluation;
using static TorchSharp.torch;

namespace Ddpm.Cli.Commands;

/// <summary>Options shared by the commands that turn images, checkpoints or statistics into features.</summary>
public sealed class EvaluationOptions
{
    public Option<int?> Count { get; } = new("--count", "-n") { Description = "Images to generate from each checkpoint given (required for checkpoints)" };
    public Option<int?> RealCount { get; } = new("--real-count") { Description = "Use only the first N images of each data set given (default: all)" };
    public Option<long> Seed { get; } = new("--seed") { Description = "Seed of the generated samples, of KID subsets and of the floor's split", DefaultValueFactory = _ => 0 };
    public Option<int> SampleBatch { get; } = new("--sample-batch-size") { Description = "Images generated at once from a checkpoint", DefaultValueFactory = _ => 64 };
    public Option<int> Batch { get; } = new("--batch-size") { Description = "Images per feature-extraction batch", DefaultValueFactory = _ => 50 };
    public Option<bool> NoEma { get; } = new("--no-ema") { Description = "Generate with the raw weights instead of the EMA weights" };
    public Option<bool> NoProgress { get; } = CommonOptions.NoProgress();
    public Option<string> Device { get; } = CommonOptions.Device();
    public Option<int> Threads { get; } = CommonOptions.Threads();

    public void AddTo(Command cmd)
    {
        foreach (var o in new Option[] { Count, RealCount, Seed, SampleBatch, Batch, NoEma, NoProgress, Device, Threads })
            cmd.Options.Add(o);
    }

    /// <summary>Opens one input: checkpoints get <c>--count</c> samples, data sets are cut to <c>--real-count</c>.</summary>
    public ImageSource Open(ParseResult parse, string path, Device device, Distributed.Shard? shard = null)
    {
        if (parse.GetValue(Batch) < 1) throw new DdpmException($"--batch-size {parse.GetValue(Batch)}: must be at least 1");
        if (parse.GetValue(SampleBatch) < 1) throw new DdpmException($"--sample-batch-size {parse.GetValue(SampleBatch)}: must be at least 1");
        var count = parse.GetValue(Count);
        var realCount = parse.GetValue(RealCount);
        if (count is < 1) throw new DdpmException($"--count {count}: must be at least 1");
        if (realCount is < 1) throw new DdpmException($"--real-count {realCount}: must be at least 1");
        if (path.EndsWith(".npz", StringComparison.OrdinalIgnoreCase) && FeatureSums.IsSumsFile(path))
            throw new DdpmException($"{path}: the partial sums of one shard (stats --shard), not statistics: merge every shard's part first with 'ddpm stats --merge PART.npz... -o OUT.npz'");
        bool isData = !path.EndsWith(".npz", StringComparison.OrdinalIgnoreCase) && !ImageSource.IsCheckpointPath(path);
        return ImageSource.Open(path, new ImageSourceOptions
        {
            Count = isData ? realCount : count, Seed = parse.GetValue(Seed), SampleBatchSize = parse.GetValue(SampleBatch),
            UseEma = !parse.GetValue(NoEma), Device = device, Generate = Generate?.Invoke(parse), Shard = shard,
            ShardBlockSize = parse.GetValue(Batch),
        });
    }

    /// <summary>
    /// The inputs are open (so a missing or malformed one has been reported first); the network is loaded now when
    /// either side has images, so that missing weights are reported before any work starts. Two statistics files
    /// need no network: it then stays unloaded unless --floor-data asks for features.
    /// </summary>
    public static void LoadWhenImagesAreGiven(DeferredFeatureExtractor extractor, ImageSource a, ImageSource b)
    {
        if (a.Kind != ImageSourceKind.Statistics || b.Kind != ImageSourceKind.Statistics) extractor.Load();
    }

    /// <summary>Set by commands that choose a sampler: how to draw samples from a checkpoint.</summary>
    public Func<ParseResult, Func<Pipelines.DdpmPipeline, int, long, CancellationToken, Tensor>?>? Generate { get; set; }

    /// <summary>Writes a report as JSON (atomically) and says where.</summary>
    public static void WriteJson(CliContext ctx, string path, string json)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        AtomicFile.WriteAllText(path, json + Environment.NewLine);
        ctx.Out.WriteLine($"wrote {path}");
    }

    /// <summary>Prints a distance report in a few lines.</summary>
    public static void Print(CliContext ctx, DistanceReport r, string label)
    {
        ctx.Out.WriteLine($"{label}: {r.Distance:F4}");
        ctx.Out.WriteLine($"  A: {r.A.Path} ({r.A.Kind}, {r.A.Count} images)");
        ctx.Out.WriteLine($"  B: {r.B.Path} ({r.B.Kind}, {r.B.Count} images)");
        if (r.Kid is MetricEstimate kid) ctx.Out.WriteLine($"  KID: {kid.Mean:F5} ± {kid.Std:F5}");
        foreach (var (name, side) in new[] { ("A", r.A), ("B", r.B) })
        {
            if (side.Score is MetricEstimate s) ctx.Out.WriteLine($"  score of {name}: {s.Mean:F3} ± {s.Std:F3}");
            if (side.ClassCounts is long[] c)
                ctx.Out.WriteLine($"  classes of {name}: [{string.Join(", ", c)}] (imbalance {side.ClassImbalance:F3}; 0 = uniform)");
        }
        if (r.ClassHistogramDistance is double tv) ctx.Out.WriteLine($"  class histograms of A and B differ by {tv:F3} (total variation)");
        if (r.Floor is FloorReport f)
            ctx.Out.WriteLine($"  floor (two disjoint real sets of {f.Count} from {f.Data}): {f.Distance:F4}");
        else if (r.FloorUnavailable is string why)
            ctx.Out.WriteLine($"  floor: not computed: {why}");
        ctx.Out.WriteLine($"  ({r.Seconds:F1} s)");
    }
}

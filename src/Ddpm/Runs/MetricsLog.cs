using System.Text.Json;
using Ddpm.IO;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Runs;

/// <summary>
/// One line of metrics.jsonl. <paramref name="ElapsedSec"/> is the wall clock of this process since it started training;
/// <paramref name="TrainSec"/> the run's training time up to this step, summed over resumes and without the time spent
/// in evaluations (null in lines written before it was recorded).
/// </summary>
public sealed record MetricsRecord(long Step, double Loss, double Lr, double GradNorm, double ImagesPerSec, double ElapsedSec,
    double? TrainSec = null)
{
    /// <summary>The training seconds at this line: <see cref="TrainSec"/>, or the elapsed seconds for older lines.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public double TrainSeconds => TrainSec ?? ElapsedSec;
}

/// <summary>
/// One evaluation line of metrics.jsonl: sample-quality figures at a step, and the run's training seconds at that step
/// (as <see cref="MetricsRecord.TrainSec"/>; null in older lines).
/// </summary>
public sealed record EvalRecord(long Step, int EvalCount, IReadOnlyDictionary<string, double> Eval, double? TrainSec = null);

/// <summary>Appends training metrics to <c>metrics.jsonl</c> (one JSON object a line) and to TensorBoard event files.</summary>
public sealed class MetricsLog : IDisposable
{
    public const string FileName = "metrics.jsonl";
    public const string TensorBoardFolder = "tensorboard";
    private static readonly JsonSerializerOptions LineJson = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
    private readonly StreamWriter _writer;
    private readonly SummaryWriter? _tensorboard;

    public MetricsLog(string runDir, bool tensorboard = true)
    {
        Directory.CreateDirectory(runDir);
        _writer = new StreamWriter(new FileStream(Path.Combine(runDir, FileName), FileMode.Append, FileAccess.Write, FileShare.Read));
        if (tensorboard) _tensorboard = utils.tensorboard.SummaryWriter(Path.Combine(runDir, TensorBoardFolder), null, false);
    }

    public void Write(MetricsRecord r)
    {
        _writer.WriteLine(JsonSerializer.Serialize(r, LineJson));
        _writer.Flush();
        if (_tensorboard is null) return;
        int step = (int)Math.Min(int.MaxValue, r.Step);
        _tensorboard.add_scalar("train/loss", (float)r.Loss, step);
        _tensorboard.add_scalar("train/lr", (float)r.Lr, step);
        _tensorboard.add_scalar("train/grad_norm", (float)r.GradNorm, step);
        _tensorboard.add_scalar("train/images_per_sec", (float)r.ImagesPerSec, step);
    }

    /// <summary>
    /// Appends an evaluation line <c>{"step": s, "eval_count": n, "eval": {name: value, ...}}</c> and writes each value
    /// to TensorBoard as <c>eval/name</c>.
    /// </summary>
    public void WriteEval(EvalRecord r)
    {
        _writer.WriteLine(JsonSerializer.Serialize(r, LineJson));
        _writer.Flush();
        if (_tensorboard is null) return;
        int step = (int)Math.Min(int.MaxValue, r.Step);
        foreach (var (name, value) in r.Eval) _tensorboard.add_scalar($"eval/{name}", (float)value, step);
    }

    /// <summary>The training seconds of the last training line (0 when there is none): where a resumed run's clock continues.</summary>
    public static double LastTrainSeconds(string runDir) => Read(runDir).LastOrDefault()?.TrainSeconds ?? 0;

    /// <summary>Reads the training lines of metrics.jsonl back (for tests and tools).</summary>
    public static List<MetricsRecord> Read(string runDir) =>
        Lines(runDir).Where(l => !l.Contains("\"eval\"", StringComparison.Ordinal))
            .Select(l => JsonSerializer.Deserialize<MetricsRecord>(l, LineJson)!).ToList();

    /// <summary>Reads the evaluation lines of metrics.jsonl back.</summary>
    public static List<EvalRecord> ReadEvals(string runDir) =>
        Lines(runDir).Where(l => l.Contains("\"eval\"", StringComparison.Ordinal))
            .Select(l => JsonSerializer.Deserialize<EvalRecord>(l, LineJson)!).ToList();

    private static IEnumerable<string> Lines(string runDir)
    {
        var path = Path.Combine(runDir, FileName);
        return File.Exists(path) ? File.ReadLines(path).Where(l => l.Length > 0).ToList() : Enumerable.Empty<string>();
    }

    /// <summary>
    /// Drops lines written after <paramref name="step"/> by a run that is now resumed from that step, and lines that are
    /// not whole JSON records (a last line torn by a crash, power loss or a full disk). Returns how many torn lines it
    /// dropped, so the caller can say so.
    /// </summary>
    public static int TruncateAfter(string runDir, long step)
    {
        var path = Path.Combine(runDir, FileName);
        if (!File.Exists(path)) return 0;
        int torn = 0;
        var keep = new List<string>();
        foreach (var line in File.ReadLines(path))
        {
            if (line.Length == 0) continue;
            long? lineStep = StepOf(line);
            if (lineStep is null) torn++;
            else if (lineStep <= step) keep.Add(line);
        }
        AtomicFile.WriteAllText(path, keep.Count == 0 ? "" : string.Join("\n", keep) + "\n");
        return torn;
    }

    private static long? StepOf(string line)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            return doc.RootElement.ValueKind == JsonValueKind.Object &&
                   doc.RootElement.TryGetProperty("step", out var s) && s.TryGetInt64(out long v) ? v : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public void Dispose()
    {
        _writer.Dispose();
    }
}

using System.Text.Json;
using Ddpm.IO;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Training;

/// <summary>One line of metrics.jsonl.</summary>
public sealed record MetricsRecord(long Step, double Loss, double Lr, double GradNorm, double ImagesPerSec, double ElapsedSec);

/// <summary>Appends training metrics to <c>metrics.jsonl</c> (one JSON object a line) and to TensorBoard event files.</summary>
public sealed class MetricsLog : IDisposable
{
    public const string FileName = "metrics.jsonl";
    public const string TensorBoardFolder = "tensorboard";
    private static readonly JsonSerializerOptions LineJson = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
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

    /// <summary>Reads metrics.jsonl back (for tests and tools).</summary>
    public static List<MetricsRecord> Read(string runDir)
    {
        var path = Path.Combine(runDir, FileName);
        if (!File.Exists(path)) return new();
        return File.ReadLines(path).Where(l => l.Length > 0)
            .Select(l => JsonSerializer.Deserialize<MetricsRecord>(l, LineJson)!).ToList();
    }

    /// <summary>Drops lines written after <paramref name="step"/> by a run that is now resumed from that step.</summary>
    public static void TruncateAfter(string runDir, long step)
    {
        var path = Path.Combine(runDir, FileName);
        if (!File.Exists(path)) return;
        var keep = File.ReadLines(path).Where(l =>
        {
            if (l.Length == 0) return false;
            using var doc = JsonDocument.Parse(l);
            return doc.RootElement.GetProperty("step").GetInt64() <= step;
        }).ToList();
        AtomicFile.WriteAllText(path, keep.Count == 0 ? "" : string.Join("\n", keep) + "\n");
    }

    public void Dispose()
    {
        _writer.Dispose();
    }
}

using Ddpm.Runs;

namespace Ddpm.Plots;

/// <summary>
/// A run's curves as its metrics.jsonl holds them: loss and learning rate per logged step, and the evaluations, each
/// placed on the run's training clock (minutes of training, summed over resumes, evaluations not counted).
/// </summary>
public sealed class RunCurves
{
    public RunCurves(string name, IReadOnlyList<MetricsRecord> metrics, IReadOnlyList<EvalRecord> evals)
    {
        Name = name;
        Metrics = metrics.OrderBy(m => m.Step).ToList();
        Evals = evals.OrderBy(e => e.Step).ToList();
    }

    /// <summary>The legend's name for the run.</summary>
    public string Name { get; }
    public IReadOnlyList<MetricsRecord> Metrics { get; }
    public IReadOnlyList<EvalRecord> Evals { get; }

    /// <summary>Reads <paramref name="runDir"/>'s metrics.jsonl; the name defaults to the folder's name.</summary>
    public static RunCurves Load(string runDir, string? name = null)
    {
        if (!Directory.Exists(runDir)) throw new DdpmException($"{runDir}: no such run folder");
        if (!File.Exists(Path.Combine(runDir, MetricsLog.FileName)))
            throw new DdpmException($"{runDir}: no {MetricsLog.FileName} (not a run folder, or a run that has not logged yet)");
        return new RunCurves(name ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(runDir))),
            MetricsLog.Read(runDir), MetricsLog.ReadEvals(runDir));
    }

    /// <summary>
    /// The minutes of training at <paramref name="step"/>: the evaluation's own record where it has one, else the first
    /// metrics line at or after the step (the line logged with it), else the last line; NaN for a run with no lines.
    /// </summary>
    public double MinutesAt(long step, double? recorded = null)
    {
        if (recorded is double s) return s / 60.0;
        if (Metrics.Count == 0) return double.NaN;
        var line = Metrics.FirstOrDefault(m => m.Step >= step) ?? Metrics[^1];
        return line.TrainSeconds / 60.0;
    }

    /// <summary>
    /// The evaluation figures that are distances (the ones whose "_floor" companion exists, or every figure that is not a
    /// floor, score or imbalance), in the order of first appearance.
    /// </summary>
    public IEnumerable<string> DistanceNames() =>
        Evals.SelectMany(e => e.Eval.Keys).Distinct()
            .Where(k => !k.EndsWith("_floor", StringComparison.Ordinal) && !k.EndsWith("_score", StringComparison.Ordinal)
                        && !k.EndsWith("_class_imbalance", StringComparison.Ordinal));

    /// <summary>(step, minutes, value, floor) of every evaluation holding <paramref name="metric"/>; floor NaN where absent.</summary>
    public IEnumerable<(long Step, double Minutes, double Value, double Floor)> Points(string metric) =>
        Evals.Where(e => e.Eval.ContainsKey(metric))
            .Select(e => (e.Step, MinutesAt(e.Step, e.TrainSec), e.Eval[metric],
                e.Eval.TryGetValue(metric + "_floor", out var floor) ? floor : double.NaN));
}

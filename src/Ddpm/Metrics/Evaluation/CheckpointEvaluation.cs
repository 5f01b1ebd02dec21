using Ddpm.Data;
using Ddpm.Pipelines;
using Ddpm.Runs;
using Ddpm.Runtime;
using static TorchSharp.torch;

namespace Ddpm.Metrics.Evaluation;

/// <summary>Which checkpoint is being scored, and how far its samples are.</summary>
public readonly record struct CheckpointEvaluationProgress(long Step, int Index, int Checkpoints, int Done, int Count);

/// <summary>
/// Scores a run's saved checkpoints after the fact, with the evaluator <c>eval_every</c> uses while training (the same
/// sampler, seeds, reference images and floors, so a figure equals the one training would have logged at that step),
/// and appends each result to the run's metrics.jsonl as an evaluation line placed on the run's training clock. This
/// gives a curve of quality against steps and minutes for a run trained without evaluations.
/// </summary>
public static class CheckpointEvaluation
{
    /// <summary>
    /// Scores every complete checkpoint of <paramref name="runDir"/> (oldest first) that has no evaluation line with the
    /// same sample count yet, unless <paramref name="again"/>; with <paramref name="every"/> &gt; 0 only those whose step
    /// is a multiple of it, and the last. <paramref name="adjust"/> changes the evaluation settings
    /// (eval_count, eval_sampler, ...) of the run's configuration. Holds the run's lock throughout, so it never writes
    /// beside a training process. Returns the lines written.
    /// </summary>
    public static IReadOnlyList<EvalRecord> Run(string runDir, Device device, Action<TrainConfig>? adjust = null, bool again = false,
        long every = 0, IProgress<CheckpointEvaluationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        if (every < 0) throw new DdpmException($"every {every}: must be 0 (every checkpoint) or positive");
        ArgumentNullException.ThrowIfNull(runDir);
        if (!Directory.Exists(runDir)) throw new DdpmException($"{runDir}: no such run folder");
        using var runLock = RunLock.Acquire(runDir);
        var checkpoints = CheckpointStore.List(runDir);
        if (checkpoints.Count == 0) throw new DdpmException($"{runDir}: no complete checkpoint to evaluate");
        var config = CheckpointStore.ReadState(checkpoints[^1]).Config.Clone();
        adjust?.Invoke(config);
        config.Validate();

        var lines = MetricsLog.Read(runDir);
        var done = MetricsLog.ReadEvals(runDir).Where(e => e.EvalCount == config.EvalCount).Select(e => e.Step).ToHashSet();
        var todo = checkpoints.Select(dir => (Dir: dir, Step: CheckpointStore.ReadState(dir).Step))
            .Where((c, i) => every == 0 || c.Step % every == 0 || i == checkpoints.Count - 1)
            .Where(c => again || !done.Contains(c.Step)).ToList();
        var written = new List<EvalRecord>();
        if (todo.Count == 0) return written;

        // The reference images come from the training data: say so when it is gone, not just that a path is missing.
        if (!File.Exists(config.Data) && !Directory.Exists(config.Data))
            throw new DdpmException($"{runDir}: the run's training data {config.Data} is not there (moved or deleted); "
                + "the evaluation compares the samples with its images");
        using var data = DatasetLoader.Load(config.Data, config.ImageSize, config.Channels, config.MaxImages);
        using var evaluator = EvalMetrics.CreateEvaluator(config, data, device);
        using var log = new MetricsLog(runDir);
        for (int i = 0; i < todo.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (dir, step) = todo[i];
            using var pipeline = DdpmPipeline.Load(dir, device);
            int index = i;
            var report = progress is null ? null : new SyncProgress<int>(n =>
                progress.Report(new CheckpointEvaluationProgress(step, index, todo.Count, n, config.EvalCount)));
            var values = evaluator.Evaluate(pipeline.Model, pipeline.Diffusion, report, cancellationToken);
            var line = lines.FirstOrDefault(m => m.Step >= step);
            var record = new EvalRecord(step, config.EvalCount, values, line is not null && line.Step == step ? line.TrainSeconds : null);
            log.WriteEval(record);
            written.Add(record);
        }
        return written;
    }
}

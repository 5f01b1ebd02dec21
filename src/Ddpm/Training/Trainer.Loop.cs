using System.Diagnostics;
using Ddpm.Imaging;
using Ddpm.Runs;
using Ddpm.Runtime;
using Ddpm.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Training;

/// <summary>What a run is doing when it reports progress.</summary>
public enum TrainPhase
{
    /// <summary>Optimizer steps.</summary>
    Train,
    /// <summary>Drawing a sample grid.</summary>
    Sample,
    /// <summary>Drawing and scoring the evaluation samples.</summary>
    Eval,
}

/// <summary>Where a run is, reported to the caller (the CLI draws the progress bar from it).</summary>
public sealed record TrainProgress(
    TrainPhase Phase, long Step, long TotalSteps, double Loss, double LearningRate, double GradNorm,
    double ImagesPerSecond, TimeSpan Elapsed, TimeSpan? Eta, int SamplingStep = 0, int SamplingSteps = 0);

/// <summary>How a run ended.</summary>
public sealed record TrainResult(long Step, bool Interrupted, string CheckpointDir, string? FinalGrid, double LastLoss, bool TimeLimitReached = false);

/// <summary>
/// The training loop around the updates: metrics lines, periodic checkpoints, evaluations and grids, cancellation and
/// the time budget (<see cref="TrainConfig.MaxMinutes"/>).
/// </summary>
public sealed partial class Trainer
{
    // The run's training seconds before this process (from the last metrics line when resuming), and the time this
    // process spent in evaluations: a run's clock counts training, so curves against minutes do not depend on how often
    // the model was scored.
    private double _trainSecondsBefore;
    private readonly Stopwatch _evaluating = new();

    private double TrainSeconds(Stopwatch total) => _trainSecondsBefore + (total.Elapsed - _evaluating.Elapsed).TotalSeconds;

    /// <summary>
    /// Samples <see cref="TrainConfig.SampleCount"/> images from the EMA weights with the grid sampler
    /// (<see cref="GridSampler"/>: the ancestral one over 250 of the T steps unless configured) and writes them as a grid.
    /// </summary>
    public string SaveSampleGrid(string path, IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        _guard.ThrowIfDiverged();
        var shape = new long[] { Config.SampleCount, Data.Channels, Data.Height, Data.Width };
        using var result = GridSampler(Config).Sample(Diffusion, EmaModel, shape, SamplingRun.Seeded(Config.Seed),
            Device, progress, cancellationToken);
        ImageIO.SaveGrid(result.Samples, path, scale: GridScale(Data.Height));
        return path;
    }

    /// <summary>The sampler of the grids: <see cref="TrainConfig.SampleSampler"/> over <see cref="TrainConfig.GridSteps()"/> steps (0: its default).</summary>
    public static ISampler GridSampler(TrainConfig config) =>
        TrainConfig.BuildSampler(config.SampleSampler, config.GridSteps(), config.SampleSpacing, config.SampleThreshold, config.SampleEta);

    /// <summary>Small images are drawn larger in grids so that a person can see them.</summary>
    public static int GridScale(int imageSize) => imageSize <= 32 ? 2 : 1;

    /// <summary>
    /// Trains until <see cref="TrainConfig.Steps"/>, logging, sampling and checkpointing as configured. On
    /// cancellation (also while a periodic evaluation or grid is drawn) it finishes the current step, logs the steps
    /// since the last metrics line, saves a checkpoint and returns with Interrupted set. When the run's training time
    /// reaches <see cref="TrainConfig.MaxMinutes"/> it stops after that step and finishes as at the last step
    /// (checkpoint, evaluation, final grid), with TimeLimitReached set.
    /// </summary>
    public TrainResult Run(IProgress<TrainProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        using var metrics = IsWriter ? new MetricsLog(RunDir) : null;
        var total = Stopwatch.StartNew();
        var window = Stopwatch.StartNew();
        var shown = Stopwatch.StartNew();
        double lastLoss = double.NaN, shownLoss = double.NaN, shownNorm = double.NaN;
        long startStep = Step;
        bool interrupted = false, timeUp = false;
        bool Spent(double trainSeconds) => Config.MaxMinutes > 0 && trainSeconds >= Config.MaxMinutes * 60;
        bool TimeIsUp() => Spent(TrainSeconds(total));
        // A budget spent by the run's earlier invocations ends this one before its first step; otherwise the clock is
        // read after each step, so the step that reaches the budget is the last.
        if (_parallel is null && Step < Config.Steps && Spent(_trainSecondsBefore)) timeUp = true;

        // One metrics line for the steps since the previous one: their mean loss, the last step's rate and norm.
        // This is where the loss is read back from the device (and divergence noticed), not after every step.
        void LogWindow()
        {
            var w = ReadWindow();
            double windowIps = w.Steps * (double)Config.BatchSize / Math.Max(window.Elapsed.TotalSeconds, 1e-9);
            metrics?.Write(new MetricsRecord(Step, w.MeanLoss, w.LearningRate, w.GradNorm, windowIps, total.Elapsed.TotalSeconds, TrainSeconds(total)));
            lastLoss = shownLoss = w.LastLoss;
            shownNorm = w.GradNorm;
            window.Restart();
            shown.Restart();
        }

        while (!timeUp && Step < Config.Steps)
        {
            if (_parallel is null && cancellationToken.IsCancellationRequested) { interrupted = true; break; }
            // In a data-parallel job every process must stop after the same step: a request on any of them travels
            // with the step's gradients, and all stop when one asked. Rank 0 alone keeps the run's clock (it read the
            // training time of the run's earlier invocations).
            if (_parallel is not null)
            {
                _parallel.StopRequested = cancellationToken.IsCancellationRequested;
                _parallel.TimeUp = IsWriter && TimeIsUp();
            }
            Advance();
            if (progress is not null)
            {
                // The progress display reads the last loss back at most once a second between log lines on a GPU;
                // on the CPU there is no device to wait for, so it shows every step's loss.
                if (Device.type == DeviceType.CPU || shown.Elapsed.TotalSeconds >= 1 || double.IsNaN(shownLoss))
                {
                    (shownLoss, shownNorm) = (_lastLoss.item<float>(), _lastGradNorm.item<float>());
                    shown.Restart();
                }
                double elapsed = total.Elapsed.TotalSeconds;
                double ips = (Step - startStep) * (double)Config.BatchSize / Math.Max(elapsed, 1e-9);
                TimeSpan? eta = Step > startStep ? TimeSpan.FromSeconds((Config.Steps - Step) * elapsed / (Step - startStep)) : null;
                if (eta is not null && Config.MaxMinutes > 0)
                {
                    var left = TimeSpan.FromSeconds(Math.Max(0, Config.MaxMinutes * 60 - TrainSeconds(total)));
                    if (left < eta) eta = left;
                }
                progress.Report(new TrainProgress(TrainPhase.Train, Step, Config.Steps, shownLoss, _lastLearningRate, shownNorm, ips, total.Elapsed, eta));
            }

            if (Step % Config.LogEvery == 0 || Step == Config.Steps) LogWindow();
            if (_parallel is { StopAgreed: true }) { interrupted = true; break; }
            if (Step < Config.Steps && (_parallel is { TimeUpAgreed: true } || (_parallel is null && TimeIsUp()))) { timeUp = true; break; }
            if (!IsWriter) continue; // rank 0 alone writes checkpoints, evaluations and grids
            string? saved = null;
            if (Step < Config.Steps && Config.CheckpointEvery > 0 && Step % Config.CheckpointEvery == 0)
                saved = SaveCheckpoint();
            try
            {
                if (Step < Config.Steps && Config.EvalEvery > 0 && Step % Config.EvalEvery == 0)
                    EvaluateAndKeepBest(metrics!, saved, progress, total, cancellationToken);
                if (Step < Config.Steps && Config.SampleEvery > 0 && Step % Config.SampleEvery == 0)
                    SaveSampleGrid(Path.Combine(RunDir, SamplesFolder, $"{CheckpointStore.NameFor(Step)}.png"),
                        SamplingProgress(progress, total), cancellationToken);
            }
            catch (OperationCanceledException)
            {
                // Cancelled while a periodic evaluation or grid was drawn: stop here, like a cancellation between steps.
                interrupted = true;
                break;
            }
        }
        // A run stopped between log lines logs its last steps now; the resumed run's next line starts after them.
        if ((interrupted || timeUp) && _windowSteps > 0) LogWindow();

        if (!IsWriter) return new TrainResult(Step, interrupted, "", null, lastLoss, timeUp && !interrupted);
        var checkpoint = SaveCheckpoint();
        string? grid = null;
        if (!interrupted)
        {
            try
            {
                if (Config.EvalEvery > 0) EvaluateAndKeepBest(metrics!, checkpoint, progress, total, cancellationToken);
                grid = SaveSampleGrid(Path.Combine(RunDir, SamplesFolder, $"{CheckpointStore.NameFor(Step)}.png"),
                    SamplingProgress(progress, total), cancellationToken);
                File.Copy(grid, Path.Combine(RunDir, SamplesFolder, "final.png"), overwrite: true);
                grid = Path.Combine(RunDir, SamplesFolder, "final.png");
            }
            catch (OperationCanceledException)
            {
                interrupted = true;
            }
        }
        return new TrainResult(Step, interrupted, checkpoint, grid, lastLoss, timeUp && !interrupted);
    }

    /// <summary>
    /// What scores the EMA model every <see cref="TrainConfig.EvalEvery"/> steps (eval_every); required when that is
    /// set. The caller builds it (the CLI: <c>Ddpm.Metrics.Evaluation.EvalMetrics.CreateEvaluator</c> from the
    /// configuration); the trainer disposes it.
    /// </summary>
    public ITrainingEvaluator? Evaluator { get; set; }

    /// <summary>Raised after each evaluation line is written to metrics.jsonl (the CLI redraws the run's curves then).</summary>
    public event Action<EvalRecord>? Evaluated;

    /// <summary>Scores the EMA model with <see cref="Evaluator"/> and returns its figures.</summary>
    public IReadOnlyDictionary<string, double> Evaluate(IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        if (Evaluator is null)
            throw new DdpmException($"eval_every {Config.EvalEvery}: the trainer has no evaluator to score the model with (set Trainer.Evaluator)");
        return Evaluator.Evaluate(EmaModel, Diffusion, progress, cancellationToken);
    }

    /// <summary>Scores the EMA model, logs the figures, and copies the checkpoint of this step to checkpoints/best when it is the best so far.</summary>
    private void EvaluateAndKeepBest(MetricsLog metrics, string? checkpoint, IProgress<TrainProgress>? progress, Stopwatch total, CancellationToken cancellationToken)
    {
        var report = progress is null ? null : new SyncProgress<int>(done => progress.Report(
            new TrainProgress(TrainPhase.Eval, Step, Config.Steps, double.NaN, 0, 0, 0, total.Elapsed, null, done, Config.EvalCount)));
        double trainSeconds = TrainSeconds(total);
        IReadOnlyDictionary<string, double> values;
        _evaluating.Start();
        try { values = Evaluate(report, cancellationToken); }
        finally { _evaluating.Stop(); }
        var record = new EvalRecord(Step, Config.EvalCount, values, trainSeconds);
        metrics.WriteEval(record);
        Evaluated?.Invoke(record);
        var metric = Evaluator!.PrimaryMetric;
        double value = values[metric];
        var best = CheckpointStore.ReadBest(RunDir);
        if (!double.IsFinite(value) || (best is not null && best.Metric == metric && best.Value <= value)) return;
        checkpoint ??= SaveCheckpoint();
        CheckpointStore.SaveBest(RunDir, checkpoint, new BestCheckpoint(metric, value, Step));
    }

    private IProgress<int>? SamplingProgress(IProgress<TrainProgress>? progress, Stopwatch total)
    {
        if (progress is null) return null;
        return new SyncProgress<int>(done => progress.Report(
            new TrainProgress(TrainPhase.Sample, Step, Config.Steps, double.NaN, 0, 0, 0, total.Elapsed, null, done, GridSampler(Config).Timesteps(Diffusion.Schedule).Length)));
    }
}

using Ddpm.Runtime;
using Ddpm.Training;
using Spectre.Console;

namespace Ddpm.Cli;

/// <summary>
/// Shows training progress: a live bar (step, loss, images/s, ETA) on an interactive terminal, plain lines
/// every few steps otherwise (logs, CI, tests).
/// </summary>
public static class ProgressView
{
    public static bool Interactive(CliContext ctx, bool disabled) =>
        !disabled && !Console.IsOutputRedirected && ReferenceEquals(ctx.Out, Console.Out) && AnsiConsole.Profile.Capabilities.Interactive;

    public static T RunTraining<T>(CliContext ctx, bool noProgress, long logEvery, Func<IProgress<TrainProgress>, T> body)
    {
        if (!Interactive(ctx, noProgress))
        {
            long lastSampleReport = -1;
            return body(new SyncProgress<TrainProgress>(p =>
            {
                if (p.Phase == TrainPhase.Train && (p.Step % logEvery == 0 || p.Step == p.TotalSteps))
                    ctx.Out.WriteLine(Describe(p));
                else if (p.Phase != TrainPhase.Train && p.SamplingStep * 10L / Math.Max(1, p.SamplingSteps) != lastSampleReport)
                {
                    lastSampleReport = p.SamplingStep * 10L / Math.Max(1, p.SamplingSteps);
                    ctx.Out.WriteLine(p.Phase == TrainPhase.Eval
                        ? $"evaluating at step {p.Step}: {p.SamplingStep}/{p.SamplingSteps} samples"
                        : $"sampling the grid: step {p.SamplingStep}/{p.SamplingSteps}");
                }
            }));
        }
        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .Start(live =>
            {
                ProgressTask? train = null, sample = null;
                ProgressTask? eval = null;
                result = body(new SyncProgress<TrainProgress>(p =>
                {
                    if (p.Phase == TrainPhase.Train)
                    {
                        train ??= live.AddTask("training", maxValue: p.TotalSteps);
                        train.Value = p.Step;
                        train.Description = Markup.Escape(Describe(p));
                    }
                    else if (p.Phase == TrainPhase.Eval)
                    {
                        if (eval is null || eval.IsFinished) eval = live.AddTask($"evaluating at step {p.Step}", maxValue: p.SamplingSteps);
                        eval.Value = p.SamplingStep;
                    }
                    else
                    {
                        sample ??= live.AddTask("sampling the grid", maxValue: p.SamplingSteps);
                        sample.Value = p.SamplingStep;
                    }
                }));
            });
        return result;
    }

    /// <summary>
    /// Progress of one loop of steps (e.g. the classifier's training): a live bar named <paramref name="label"/> and
    /// described by <paramref name="describe"/> on an interactive terminal, otherwise the description at every tenth of
    /// the steps.
    /// </summary>
    public static T RunSteps<TProgress, T>(CliContext ctx, bool noProgress, string label, Func<TProgress, (long Step, long Total)> position,
        Func<TProgress, string> describe, Func<IProgress<TProgress>, T> body)
    {
        if (!Interactive(ctx, noProgress))
        {
            long lastTenth = -1;
            return body(new SyncProgress<TProgress>(p =>
            {
                var (step, total) = position(p);
                long tenth = step * 10 / total;
                if (tenth != lastTenth) { lastTenth = tenth; ctx.Out.WriteLine(describe(p)); }
            }));
        }
        T result = default!;
        AnsiConsole.Progress().AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .Start(live =>
            {
                ProgressTask? task = null;
                result = body(new SyncProgress<TProgress>(p =>
                {
                    var (step, total) = position(p);
                    task ??= live.AddTask(label, maxValue: total);
                    task.Value = step;
                    task.Description = Markup.Escape(describe(p));
                }));
            });
        return result;
    }

    public static void RunSampling(CliContext ctx, bool noProgress, string label, Action<IProgress<(int Done, int Total)>> body,
        string unit = "denoising steps")
    {
        if (!Interactive(ctx, noProgress))
        {
            int last = -1;
            body(new SyncProgress<(int Done, int Total)>(p =>
            {
                int decile = p.Done * 10 / Math.Max(1, p.Total);
                if (decile != last) { last = decile; ctx.Out.WriteLine($"{label}: {p.Done}/{p.Total} {unit}"); }
            }));
            return;
        }
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(live =>
            {
                ProgressTask? task = null;
                body(new SyncProgress<(int Done, int Total)>(p =>
                {
                    task ??= live.AddTask(label, maxValue: p.Total);
                    task.Value = p.Done;
                }));
            });
    }

    /// <summary>Progress over named stages counted in images (feature extraction, sample generation).</summary>
    public static T RunStages<T>(CliContext ctx, bool noProgress, Func<IProgress<(string Stage, long Done, long Total)>, T> body)
    {
        if (!Interactive(ctx, noProgress))
        {
            var last = (Stage: "", Decile: -1L);
            return body(new SyncProgress<(string Stage, long Done, long Total)>(p =>
            {
                long decile = p.Total > 0 ? p.Done * 10 / p.Total : p.Done;
                if (p.Stage == last.Stage && decile == last.Decile) return;
                last = (p.Stage, decile);
                ctx.Out.WriteLine(p.Total > 0 ? $"{p.Stage}: {p.Done}/{p.Total} images" : $"{p.Stage}: {p.Done} images");
            }));
        }
        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(live =>
            {
                var tasks = new Dictionary<string, ProgressTask>();
                result = body(new SyncProgress<(string Stage, long Done, long Total)>(p =>
                {
                    if (!tasks.TryGetValue(p.Stage, out var task))
                        tasks[p.Stage] = task = live.AddTask(Markup.Escape(p.Stage), maxValue: Math.Max(1, p.Total));
                    task.Value = p.Done;
                }));
            });
        return result;
    }

    public static string Describe(TrainProgress p)
    {
        var eta = p.Eta is TimeSpan e ? $" eta {e:hh\\:mm\\:ss}" : "";
        return $"step {p.Step}/{p.TotalSteps} loss {p.Loss:F4} lr {p.LearningRate:0.0e+00} grad {p.GradNorm:F2} {p.ImagesPerSecond:F1} img/s{eta}";
    }
}

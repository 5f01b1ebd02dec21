using System.CommandLine;
using System.Globalization;
using Ddpm.Metrics.Evaluation;

namespace Ddpm.Cli.Commands;

/// <summary>
/// <c>ddpm evaluate RUN</c>: scores the run's saved checkpoints with its eval_every evaluator and logs the figures to
/// its metrics.jsonl, so that a run trained without evaluations gets its curve afterwards.
/// </summary>
public static class EvaluateCommand
{
    public static Command Create(CliContext ctx)
    {
        var run = new Argument<string>("run") { Description = "Run folder; every complete checkpoint in it is scored" };
        var every = new Option<long>("--every") { Description = "Score only the checkpoints whose step is a multiple of N, and the last (default: all)" };
        var again = new Option<bool>("--again") { Description = "Score checkpoints that already have an evaluation with this sample count too" };
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var noProgress = CommonOptions.NoProgress();
        var cmd = new Command("evaluate", "Score a run's saved checkpoints as --eval-every would have during training, log them to its metrics.jsonl and redraw its curves.png.")
        {
            run, every, again, device, threads, noProgress,
        };
        // The evaluation settings of train, with the run's own values as defaults, and the training data's path: the
        // reference images are its first eval_real_count images, and a run outlives the folder it was trained from.
        var bindings = SettingOptions.ForTrainConfig()
            .Where(b => b.Setting.Key.StartsWith("eval_", StringComparison.Ordinal) && b.Setting.Key != "eval_every"
                || b.Setting.Key is "inception_weights" or "data")
            .ToList();
        foreach (var b in bindings)
        {
            b.Option.Description = b.Setting.Key == "data"
                ? "Where the run's training data is now, if it moved: the samples are compared with its first --eval-real-count images (default: the run's path)"
                : b.Setting.Help + " (default: the run's)";
            cmd.Options.Add(b.Option);
        }
        cmd.SetAction(parse =>
        {
            var dir = parse.GetValue(run)!;
            var dev = CommonOptions.Setup(parse.GetValue(device) ?? "auto", parse.GetValue(threads));
            var token = ctx.CancelOnCtrlC("stopping after this checkpoint's samples");
            bool quiet = !ProgressView.Interactive(ctx, parse.GetValue(noProgress));
            var progress = quiet ? null : new Ddpm.Runtime.SyncProgress<CheckpointEvaluationProgress>(p =>
                ctx.Err.Write($"\rcheckpoint {p.Index + 1}/{p.Checkpoints} (step {p.Step}): {p.Done}/{p.Count} samples   "));
            var written = CheckpointEvaluation.Run(dir, dev,
                c => { foreach (var b in bindings.Where(b => parse.GetResult(b.Option) is { Implicit: false })) b.Apply(c, parse); },
                parse.GetValue(again), parse.GetValue(every), progress, token);
            if (!quiet) ctx.Err.WriteLine();
            if (written.Count == 0)
            {
                ctx.Out.WriteLine($"{dir}: every checkpoint already has an evaluation with this sample count (--again scores them anew)");
                return 0;
            }
            foreach (var r in written)
            {
                var figures = string.Join(", ", r.Eval.Select(kv => $"{kv.Key} {kv.Value.ToString("0.###", CultureInfo.InvariantCulture)}"));
                var minutes = r.TrainSec is double s ? $" ({(s / 60).ToString("0.0", CultureInfo.InvariantCulture)} min)" : "";
                ctx.Out.WriteLine($"step {r.Step}{minutes}: {figures}");
            }
            PlotCommand.Refresh(ctx, dir);
            return 0;
        });
        return cmd;
    }
}

using System.CommandLine;
using Ddpm.Plots;

namespace Ddpm.Cli.Commands;

/// <summary><c>ddpm plot RUN...</c>: a run's loss, learning rate and evaluations against steps and minutes, as one PNG.</summary>
public static class PlotCommand
{
    /// <summary>The PNG a run folder keeps of its own curves (redrawn by train at each evaluation, and by evaluate).</summary>
    public const string RunFile = "curves.png";

    public static Command Create(CliContext ctx)
    {
        var runs = new Argument<string[]>("runs") { Description = "Run folders (several share the panels, one colour each)", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string>("--output", "-o") { Description = $"PNG to write (default: RUN/{RunFile} for one run, {RunFile} here for several)" };
        var metric = new Option<string>("--metric") { Description = "Evaluation figure to draw (default: the first distance logged, e.g. fd_classifier)" };
        var width = new Option<int>("--width") { Description = "Width in pixels", DefaultValueFactory = _ => 1500 };
        var height = new Option<int>("--height") { Description = "Height in pixels", DefaultValueFactory = _ => 900 };
        var label = new Option<string[]>("--label") { Description = "The legend's name of each run, in the order of the runs (default: the folders' names)", AllowMultipleArgumentsPerToken = false };
        var cmd = new Command("plot", "Draw runs' training loss, learning rate and evaluation distance against optimizer steps and minutes of training (PNG).")
        {
            runs, output, metric, width, height, label,
        };
        cmd.SetAction(parse =>
        {
            var dirs = parse.GetValue(runs)!;
            var labels = parse.GetValue(label) ?? [];
            if (labels.Length != 0 && labels.Length != dirs.Length)
                throw new DdpmException($"plot: {labels.Length} --label for {dirs.Length} runs (give one per run, in the runs' order, or none)");
            var curves = dirs.Select((d, i) => RunCurves.Load(d, labels.Length == 0 ? null : labels[i])).ToList();
            var path = parse.GetValue(output) ?? (dirs.Length == 1 ? Path.Combine(dirs[0], RunFile) : RunFile);
            var drawn = RunPlot.Save(curves, path, parse.GetValue(metric), parse.GetValue(width), parse.GetValue(height));
            ctx.Out.WriteLine($"wrote {path} ({curves.Count} run{(curves.Count == 1 ? "" : "s")}; {(drawn is null ? "no evaluations logged" : "distance: " + drawn)})");
            return 0;
        });
        return cmd;
    }

    /// <summary>Redraws a run's own curves after an evaluation; a failure is reported, never fatal to the caller.</summary>
    public static void Refresh(CliContext ctx, string runDir)
    {
        try
        {
            RunPlot.Save([RunCurves.Load(runDir)], Path.Combine(runDir, RunFile));
        }
        catch (Exception e) when (e is DdpmException or IOException or UnauthorizedAccessException)
        {
            ctx.Err.WriteLine($"note: could not redraw {Path.Combine(runDir, RunFile)}: {e.Message}");
        }
    }
}

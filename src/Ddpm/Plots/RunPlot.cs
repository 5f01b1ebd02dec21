using ScottPlot;

namespace Ddpm.Plots;

/// <summary>
/// Draws runs' curves into one PNG (with ScottPlot): loss, learning rate and an evaluation distance, each against
/// optimizer steps (top row) and minutes of training (bottom row); several runs share the panels, one colour each,
/// and the distance's real-vs-real floor is drawn dashed in the run's colour.
/// </summary>
public static class RunPlot
{
    /// <summary>
    /// Writes the figure to <paramref name="path"/> (PNG). <paramref name="metric"/> picks the evaluation figure (default:
    /// the first distance any run has; the distance panels stay empty when no run has evaluations). Returns the metric
    /// drawn, or null when there was none.
    /// </summary>
    public static string? Save(IReadOnlyList<RunCurves> runs, string path, string? metric = null, int width = 1500, int height = 900)
    {
        ArgumentNullException.ThrowIfNull(runs);
        if (runs.Count == 0) throw new DdpmException("plot: no runs given");
        if (width < 300 || height < 200) throw new DdpmException($"plot: {width}x{height} is too small (at least 300x200)");
        metric ??= runs.SelectMany(r => r.DistanceNames()).FirstOrDefault();
        if (metric is not null && !runs.Any(r => r.Points(metric).Any()))
            throw new DdpmException($"plot: no run has evaluations of '{metric}' (they have: {string.Join(", ", runs.SelectMany(r => r.DistanceNames()).Distinct().DefaultIfEmpty("none"))})");

        var multiplot = new Multiplot();
        multiplot.AddPlots(6);
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Grid(2, 3);
        var palette = new ScottPlot.Palettes.Category10();
        for (int row = 0; row < 2; row++)
        {
            bool minutes = row == 1;
            string x = minutes ? "minutes of training" : "optimizer step";
            var loss = multiplot.GetPlot(row * 3);
            var lr = multiplot.GetPlot(row * 3 + 1);
            var distance = multiplot.GetPlot(row * 3 + 2);
            Label(loss, "training loss", x);
            Label(lr, "learning rate", x);
            Label(distance, metric is null ? "no evaluations in metrics.jsonl" : metric, x);
            for (int i = 0; i < runs.Count; i++)
            {
                var run = runs[i];
                var color = palette.GetColor(i);
                var xs = run.Metrics.Select(m => minutes ? m.TrainSeconds / 60.0 : m.Step).ToArray();
                Line(loss, xs, run.Metrics.Select(m => Log(m.Loss)).ToArray(), color, run.Name);
                Line(lr, xs, run.Metrics.Select(m => m.Lr).ToArray(), color, run.Name);
                if (metric is null) continue;
                var points = run.Points(metric).ToArray();
                if (points.Length == 0) continue;
                var px = points.Select(p => minutes ? p.Minutes : p.Step).ToArray();
                var values = Line(distance, px, points.Select(p => Log(p.Value)).ToArray(), color, run.Name);
                values.MarkerSize = 6;
                if (points.Any(p => double.IsFinite(p.Floor)))
                {
                    var floor = Line(distance, px, points.Select(p => Log(p.Floor)).ToArray(), color, $"{run.Name} floor");
                    floor.LinePattern = LinePattern.Dashed;
                }
            }
            LogAxis(loss);
            LogAxis(distance);
            foreach (var plot in new[] { loss, lr, distance })
                if (runs.Count > 1 || plot == distance) plot.ShowLegend(Alignment.UpperRight);
        }
        var folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (folder is not null) Directory.CreateDirectory(folder);
        multiplot.SavePng(path, width, height);
        return metric;
    }

    // Losses and distances fall over orders of magnitude: drawn as log10 values on an axis labelled in the values.
    private static double Log(double value) => value > 0 ? Math.Log10(value) : double.NaN;

    private static void LogAxis(Plot plot)
    {
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            LabelFormatter = y => Math.Pow(10, y).ToString("G3", System.Globalization.CultureInfo.InvariantCulture),
            MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
        };
        plot.YLabel("log scale");
    }

    private static void Label(Plot plot, string title, string x)
    {
        plot.Title(title);
        plot.XLabel(x);
    }

    private static ScottPlot.Plottables.Scatter Line(Plot plot, double[] xs, double[] ys, Color color, string name)
    {
        var line = plot.Add.Scatter(xs, ys, color);
        line.MarkerSize = 0;
        line.LineWidth = 2;
        line.LegendText = name;
        return line;
    }
}

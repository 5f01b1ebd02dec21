using Ddpm.Plots;
using Ddpm.Runs;
using SkiaSharp;

namespace Ddpm.Tests.Plots;

public class RunPlotTests
{
    private static RunCurves Curves(string name, double secondsPerStep, params (long Step, double Fd)[] evals) => new(name,
        Enumerable.Range(1, 10).Select(i => new MetricsRecord(i * 10, 1.0 / i, 1e-3, 0.5, 100, i * 10 * secondsPerStep, i * 10 * secondsPerStep)).ToList(),
        evals.Select(e => new EvalRecord(e.Step, 100, new Dictionary<string, double> { ["fd_x"] = e.Fd, ["fd_x_floor"] = 2, ["fd_x_score"] = 5 })).ToList());

    [Fact]
    public void EvaluationsArePlacedOnTheTrainingClockOfTheirStep()
    {
        var run = Curves("a", 0.6, (30, 50), (100, 9));
        var points = run.Points("fd_x").ToList();
        Assert.Equal(new[] { 0.3, 1.0 }, points.Select(p => Math.Round(p.Minutes, 12)));
        Assert.Equal(new[] { 2.0, 2.0 }, points.Select(p => p.Floor));
        Assert.Equal(new[] { "fd_x" }, run.DistanceNames());
        // A recorded clock wins over the metrics line; a step past the last line takes the last line's.
        Assert.Equal(2.0, run.MinutesAt(30, recorded: 120));
        Assert.Equal(1.0, run.MinutesAt(500));
    }

    [Fact]
    public void OnePngHoldsEveryRunAtTheAskedSize()
    {
        var path = Path.Combine(TestUtil.TempDir(), "sub", "curves.png");
        var drawn = RunPlot.Save([Curves("a", 0.6, (50, 40), (100, 9)), Curves("b", 0.3, (100, 20))], path, width: 900, height: 600);
        Assert.Equal("fd_x", drawn);
        using var bitmap = SKBitmap.Decode(path);
        Assert.Equal((900, 600), (bitmap.Width, bitmap.Height));
        // Each run's lines are drawn in its own colour (Category10's first two: #1f77b4 and #ff7f0e); axes, labels and
        // grid are grey, so these pixels come from the runs' lines and markers only.
        int Count(SKColor c)
        {
            int n = 0;
            for (int y = 0; y < 600; y++)
                for (int x = 0; x < 900; x++)
                {
                    var p = bitmap.GetPixel(x, y);
                    if (Math.Abs(p.Red - c.Red) + Math.Abs(p.Green - c.Green) + Math.Abs(p.Blue - c.Blue) < 30) n++;
                }
            return n;
        }
        Assert.True(Count(new SKColor(0x1f, 0x77, 0xb4)) > 300, "run a's lines are missing");
        Assert.True(Count(new SKColor(0xff, 0x7f, 0x0e)) > 300, "run b's lines are missing");
    }

    [Fact]
    public void AMetricNoRunHasIsRefusedNamingTheOnesThereAre()
    {
        var e = Assert.Throws<DdpmException>(() => RunPlot.Save([Curves("a", 1, (10, 3))], Path.Combine(TestUtil.TempDir(), "x.png"), "fid"));
        Assert.Contains("'fid'", e.Message);
        Assert.Contains("fd_x", e.Message);
        // A run without evaluations still draws its loss and learning rate.
        Assert.Null(RunPlot.Save([Curves("a", 1)], Path.Combine(TestUtil.TempDir(), "y.png")));
    }

    [Fact]
    public void PlotCommandDrawsARunFolderAndRefusesAFolderWithoutMetrics()
    {
        var dir = TestUtil.TempDir();
        var (code, output, err) = TestUtil.Cli("plot", dir);
        Assert.Equal(1, code);
        Assert.Contains("no metrics.jsonl", err);
        File.WriteAllLines(Path.Combine(dir, MetricsLog.FileName), [
            """{"step":10,"loss":0.5,"lr":0.001,"grad_norm":1,"images_per_sec":90,"elapsed_sec":6}""",
            """{"step":20,"loss":0.25,"lr":0.001,"grad_norm":1,"images_per_sec":90,"elapsed_sec":12,"train_sec":12}""",
            """{"step":20,"eval_count":10,"eval":{"fd_classifier":30,"fd_classifier_floor":3}}""",
        ]);
        (code, output, err) = TestUtil.Cli("plot", dir);
        Assert.True(code == 0, err);
        Assert.Contains("distance: fd_classifier", output);
        Assert.True(File.Exists(Path.Combine(dir, "curves.png")));
    }

    [Fact]
    public void LabelsNameTheRunsInTheLegendOnePerRun()
    {
        // Two runs whose folders share a name (as two rounds' "default" do): the labels tell them apart.
        var root = TestUtil.TempDir();
        string[] dirs = [Path.Combine(root, "a", "default"), Path.Combine(root, "b", "default")];
        foreach (var d in dirs)
        {
            Directory.CreateDirectory(d);
            File.WriteAllLines(Path.Combine(d, MetricsLog.FileName), [
                """{"step":10,"loss":0.5,"lr":0.001,"grad_norm":1,"images_per_sec":90,"elapsed_sec":6,"train_sec":6}""",
                """{"step":20,"loss":0.25,"lr":0.001,"grad_norm":1,"images_per_sec":90,"elapsed_sec":12,"train_sec":12}""",
            ]);
        }
        string Draw(string name, params string[] labels)
        {
            var png = Path.Combine(root, name + ".png");
            var args = new List<string> { "plot", dirs[0], dirs[1], "-o", png };
            foreach (var l in labels) args.AddRange(["--label", l]);
            var (code, _, err) = TestUtil.Cli(args.ToArray());
            Assert.True(code == 0, err);
            return png;
        }
        var third = File.ReadAllBytes(Draw("x", "third", "fourth"));
        Assert.Equal(third, File.ReadAllBytes(Draw("y", "third", "fourth")));        // the same labels draw the same image
        Assert.NotEqual(third, File.ReadAllBytes(Draw("z", "first", "second")));     // other labels, another legend
        var (code, _, err) = TestUtil.Cli("plot", dirs[0], dirs[1], "--label", "only-one");
        Assert.Equal(1, code);
        Assert.Equal("error: plot: 1 --label for 2 runs (give one per run, in the runs' order, or none)", err.Trim());
    }
}

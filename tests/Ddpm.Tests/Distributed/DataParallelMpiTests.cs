using Ddpm.Runs;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.Tests.Distributed;

/// <summary>
/// <c>mpirun -n 2 ddpm train</c> against one process with the same global batch. Not bit for bit: each process sums
/// its rows' losses and the all-reduce adds the two parts, where one process sums all rows at once, so the gradients
/// differ by float32 rounding (about 1e-7 of their size); a few Adam steps carry that to the weights without growing
/// it much. 1e-5 of the largest weight leaves room for that and for none of a real difference (a wrong shard, another
/// batch, noise drawn per process), which moves weights by the learning rate, 1e-3, or more; the logged losses must
/// agree as closely (a loss averaged over processes instead of summed would be halved).
/// </summary>
public class DataParallelMpiTests : Ddpm.Tests.Cli.OneThreadTest
{
    private const double Tolerance = 1e-5;

    private static string[] TinyRun(string dir, long steps)
    {
        var (_, cfg) = TestUtil.WriteTinyRunInputs(dir, images: 32, steps);
        // No dropout: its masks are drawn per process, so with dropout the runs are equal in distribution only.
        return ["train", "--config", cfg, "--dropout", "0", "--no-progress", "--threads", "1", "--device", "cpu"];
    }

    private static double MaxDifference(string a, string b, string file)
    {
        using var scope = NewDisposeScope();
        var x = Safetensors.LoadStateDict(Path.Combine(CheckpointStore.Resolve(a), file));
        var y = Safetensors.LoadStateDict(Path.Combine(CheckpointStore.Resolve(b), file));
        Assert.Equal(x.Keys.Order(), y.Keys.Order());
        double scale = x.Values.Max(t => t.abs().max().item<float>());
        return x.Keys.Max(k => (x[k] - y[k]).abs().max().item<float>()) / scale;
    }

    private static double[] Losses(string run) =>
        File.ReadAllLines(Path.Combine(run, MetricsLog.FileName))
            .Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement)
            .Where(e => e.TryGetProperty("loss", out _)).Select(e => e.GetProperty("loss").GetDouble()).ToArray();

    private static (int, string, string) InProcess(params string[] args) => TestUtil.Cli(args);

    [MpiFact]
    public void TwoProcessesTrainWhatOneProcessTrainsWithTheSameGlobalBatch()
    {
        var dir = TestUtil.TempDir();
        var args = TinyRun(dir, steps: 6);
        var (code, output, err) = InProcess([.. args, "-o", Path.Combine(dir, "one")]);
        Assert.True(code == 0, err + output);
        var (mpiCode, mpiOutput) = MpiRun.Cli(2, [.. args, "-o", Path.Combine(dir, "two")]);
        Assert.True(mpiCode == 0, mpiOutput);
        Assert.Contains("data-parallel: 2 processes", mpiOutput);
        Assert.Single(mpiOutput.Split('\n'), l => l.StartsWith("done:", StringComparison.Ordinal)); // rank 0 alone prints

        foreach (var file in new[] { CheckpointStore.ModelFile, CheckpointStore.EmaFile })
        {
            double d = MaxDifference(Path.Combine(dir, "one"), Path.Combine(dir, "two"), file);
            Assert.True(d <= Tolerance, $"{file}: max |one - two| = {d:E2} of the largest weight");
        }
        // Rank 0 alone wrote the metrics: one line per logged step, the same losses.
        var one = Losses(Path.Combine(dir, "one"));
        var two = Losses(Path.Combine(dir, "two"));
        Assert.Equal(one.Length, two.Length);
        for (int i = 0; i < one.Length; i++) Assert.True(Math.Abs(one[i] - two[i]) <= Tolerance * one[i], $"line {i}: loss {one[i]} against {two[i]}");
        Assert.Equal(6, CheckpointStore.ReadState(CheckpointStore.Resolve(Path.Combine(dir, "two"))).Step);
    }

    /// <summary>A run started by one process and resumed by two equals one process's uninterrupted run (the data order depends on the global step only).</summary>
    [MpiFact]
    public void ARunResumesWithAnotherProcessCount()
    {
        var dir = TestUtil.TempDir();
        var args = TinyRun(dir, steps: 6);
        var (code, output, err) = InProcess([.. args, "-o", Path.Combine(dir, "straight")]);
        Assert.True(code == 0, err + output);
        (code, output, err) = InProcess([.. args, "--steps", "3", "-o", Path.Combine(dir, "split")]);
        Assert.True(code == 0, err + output);
        var (mpiCode, mpiOutput) = MpiRun.Cli(2, "train", "--resume", Path.Combine(dir, "split"), "--steps", "6", "--no-progress");
        Assert.True(mpiCode == 0, mpiOutput);
        Assert.Contains("resuming", mpiOutput);
        foreach (var file in new[] { CheckpointStore.ModelFile, CheckpointStore.EmaFile })
        {
            double d = MaxDifference(Path.Combine(dir, "straight"), Path.Combine(dir, "split"), file);
            Assert.True(d <= Tolerance, $"{file}: max |straight - resumed by two| = {d:E2} of the largest weight");
        }
    }

    /// <summary>A failure on the processes is an error of the job, not a hang: here every process refuses a batch smaller than the process count.</summary>
    [MpiFact]
    public void ABatchSmallerThanTheProcessCountIsRefused()
    {
        var dir = TestUtil.TempDir();
        var (code, output) = MpiRun.Cli(2, [.. TinyRun(dir, steps: 2), "--batch-size", "1", "-o", Path.Combine(dir, "run")]);
        Assert.NotEqual(0, code);
        Assert.Contains("batch_size", output.Replace("--batch-size", "batch_size"));
        Assert.False(CheckpointStore.HasCompleteCheckpoint(Path.Combine(dir, "run")));
    }
}

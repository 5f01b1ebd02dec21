using Ddpm.Metrics;

namespace Ddpm.Tests.Distributed;

/// <summary><c>ddpm sample</c> and <c>ddpm stats</c> under <c>mpirun -n 2</c> against one process.</summary>
public class ShardedMpiTests : Ddpm.Tests.Cli.OneThreadTest
{
    private static string TinyRun(string dir)
    {
        var (_, cfg) = TestUtil.WriteTinyRunInputs(dir, images: 16, steps: 2);
        var run = Path.Combine(dir, "run");
        var (code, output, err) = TestUtil.Cli("train", "--config", cfg, "-o", run, "--no-progress", "--threads", "1", "--device", "cpu");
        Assert.True(code == 0, err + output);
        return run;
    }

    /// <summary>Each process generates the batches of its rank; together the same files, byte for byte, as one process.</summary>
    [MpiFact]
    public void TwoProcessesSampleTheImagesOneProcessSamples()
    {
        var dir = TestUtil.TempDir();
        var run = TinyRun(dir);
        string[] args = ["sample", "-c", run, "-n", "7", "--batch-size", "2", "--sampler", "ddim", "--sample-steps", "2", "--no-progress", "--device", "cpu"];
        var (code, output, err) = TestUtil.Cli([.. args, "-o", Path.Combine(dir, "one"), "--threads", "1"]);
        Assert.True(code == 0, err + output);
        var (mpiCode, mpiOutput) = MpiRun.Cli(2, [.. args, "-o", Path.Combine(dir, "two")]);
        Assert.True(mpiCode == 0, mpiOutput);
        Assert.Contains("2 processes wrote 7 of 7 images", mpiOutput);
        var one = Directory.GetFiles(Path.Combine(dir, "one")).Select(Path.GetFileName).Order().ToArray();
        Assert.Equal(one, Directory.GetFiles(Path.Combine(dir, "two")).Select(Path.GetFileName).Order().ToArray());
        foreach (var f in one) Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "one", f!)), File.ReadAllBytes(Path.Combine(dir, "two", f!)));

        (mpiCode, mpiOutput) = MpiRun.Cli(2, [.. args, "-o", Path.Combine(dir, "grid.png")]);
        Assert.NotEqual(0, mpiCode);
        Assert.Contains("a grid cannot be split", mpiOutput);
    }

    /// <summary>FID with each side's statistics merged from two processes equals one process's (random Inception weights; see JobCliTests for the tolerance).</summary>
    [MpiFact]
    public void TwoProcessesComputeTheFidOneProcessComputes()
    {
        var dir = TestUtil.TempDir();
        var weights = Path.Combine(dir, "inception.safetensors");
        using (var net = Ddpm.Tests.Metrics.Inception.InceptionTestNet.Create()) TorchSharp.PyBridge.PyBridgeModuleExtensions.save_safetensors(net, weights);
        string[] args = ["fid", TestUtil.WriteIdx(dir, "x", 7, seed: 5), TestUtil.WriteIdx(dir, "y", 7, seed: 6), "--inception-weights", weights, "--dims", "64", "--batch-size", "3", "--no-progress", "--device", "cpu"];
        var (code, output, err) = TestUtil.Cli([.. args, "-o", Path.Combine(dir, "one.json"), "--threads", "1"]);
        Assert.True(code == 0, err + output);
        var (mpiCode, mpiOutput) = MpiRun.Cli(2, [.. args, "-o", Path.Combine(dir, "two.json")]);
        Assert.True(mpiCode == 0, mpiOutput);
        Assert.Contains("statistics merged from 2 processes", mpiOutput);
        double Distance(string f) => System.Text.Json.JsonDocument.Parse(File.ReadAllText(f)).RootElement.GetProperty("distance").GetDouble();
        double one = Distance(Path.Combine(dir, "one.json"));
        Assert.Equal(one, Distance(Path.Combine(dir, "two.json")), 1e-6 * one);
    }

    /// <summary>Statistics summed by one all-reduce equal one process's, to float64 rounding (the merge sums outer products, one process takes the covariance of centred features).</summary>
    [MpiFact]
    public void TwoProcessesComputeTheStatisticsOneProcessComputes()
    {
        var dir = TestUtil.TempDir();
        var data = TestUtil.WriteIdx(dir, "digits", 40, seed: 1, size: 28); // 28x28 grey, for the MNIST classifier's features
        string[] args = ["stats", data, "--classifier", "mnist", "--batch-size", "8", "--no-progress", "--device", "cpu"];
        var (code, output, err) = TestUtil.Cli([.. args, "-o", Path.Combine(dir, "one.npz"), "--threads", "1"]);
        Assert.True(code == 0, err + output);
        var (mpiCode, mpiOutput) = MpiRun.Cli(2, [.. args, "-o", Path.Combine(dir, "two.npz")]);
        Assert.True(mpiCode == 0, mpiOutput);
        Assert.Contains("statistics of 40 images from 2 processes", mpiOutput);
        var one = FeatureStatistics.LoadNpz(Path.Combine(dir, "one.npz"));
        var two = FeatureStatistics.LoadNpz(Path.Combine(dir, "two.npz"));
        double muScale = one.Mu.Max(Math.Abs), sigmaScale = one.Sigma.Cast<double>().Max(Math.Abs);
        for (int i = 0; i < one.Dim; i++)
        {
            Assert.True(Math.Abs(one.Mu[i] - two.Mu[i]) <= 1e-12 * muScale, $"mu[{i}]");
            for (int j = 0; j < one.Dim; j++) Assert.True(Math.Abs(one.Sigma[i, j] - two.Sigma[i, j]) <= 1e-12 * sigmaScale, $"sigma[{i},{j}]");
        }
    }
}

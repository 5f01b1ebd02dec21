using System.Text.Json;
using Ddpm.Cli;
using Ddpm.Data;
using Ddpm.Distributed;
using Ddpm.Metrics;
using Ddpm.Tests.Metrics.Inception;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.Tests.Distributed;

/// <summary>
/// The commands' MPI paths in this process, as the one process of a job of one (the communicator a launcher would give
/// stands in): each must give what the command gives without MPI. The same paths with two real processes are tested by
/// <see cref="ShardedMpiTests"/> and <see cref="DataParallelMpiTests"/> under mpirun.
/// </summary>
public class JobCliTests : Ddpm.Tests.Cli.OneThreadTest
{
    private static (int Code, string Out, string Err) InJob(StandInCommunicator job, params string[] args)
    {
        using (MpiSession.Use(job)) return TestUtil.Cli(args);
    }

    [Fact]
    public void SampleStatsFidAndTrainInAJobOfOneGiveWhatTheyGiveWithoutMpi()
    {
        var dir = TestUtil.TempDir();
        var (_, cfg) = TestUtil.WriteTinyRunInputs(dir, images: 16, steps: 2);
        var job = new StandInCommunicator(); // rank 0 of a job of one: every collective is the identity

        // train: the data-parallel path (one all-reduce per step) and rank 0's outputs.
        var (code, output, err) = InJob(job, "train", "--config", cfg, "-o", Path.Combine(dir, "run"), "--no-progress", "--threads", "1", "--device", "cpu");
        Assert.True(code == 0, err + output);
        Assert.Contains("data-parallel: 1 processes", output);
        Assert.Contains("communication:", output);
        Assert.True(job.Reductions >= 2);
        var run = Path.Combine(dir, "run");

        // sample: the same files as without MPI; a grid is refused.
        string[] sample = ["sample", "-c", run, "-n", "5", "--batch-size", "2", "--sampler", "ddim", "--sample-steps", "2", "--no-progress", "--threads", "1", "--device", "cpu"];
        (code, output, err) = TestUtil.Cli([.. sample, "-o", Path.Combine(dir, "plain")]);
        Assert.True(code == 0, err + output);
        (code, output, err) = InJob(job, [.. sample, "-o", Path.Combine(dir, "job")]);
        Assert.True(code == 0, err + output);
        Assert.Contains("1 processes wrote 5 of 5 images", output);
        foreach (var f in Directory.GetFiles(Path.Combine(dir, "plain")))
            Assert.Equal(File.ReadAllBytes(f), File.ReadAllBytes(Path.Combine(dir, "job", Path.GetFileName(f))));
        (code, _, err) = InJob(job, [.. sample, "-o", Path.Combine(dir, "grid.png")]);
        Assert.NotEqual(0, code);
        Assert.Contains("mpirun with --output", err);
        (code, _, err) = InJob(job, [.. sample, "-o", Path.Combine(dir, "x"), "--shard", "0/2"]);
        Assert.Contains("under mpirun", err);

        // stats: the statistics of the all-reduced sums equal the plain ones (to float64 rounding).
        var digits = TestUtil.WriteIdx(dir, "digits", 20, seed: 3, size: 28);
        string[] stats = ["stats", digits, "--classifier", "mnist", "--batch-size", "8", "--no-progress", "--threads", "1", "--device", "cpu"];
        Assert.Equal(0, TestUtil.Cli([.. stats, "-o", Path.Combine(dir, "plain.npz")]).Code);
        (code, output, err) = InJob(job, [.. stats, "-o", Path.Combine(dir, "job.npz")]);
        Assert.True(code == 0, err + output);
        Assert.Contains("from 1 processes", output);
        var a = FeatureStatistics.LoadNpz(Path.Combine(dir, "plain.npz"));
        var b = FeatureStatistics.LoadNpz(Path.Combine(dir, "job.npz"));
        double scale = a.Sigma.Cast<double>().Max(Math.Abs);
        Assert.True(a.Sigma.Cast<double>().Zip(b.Sigma.Cast<double>()).All(p => Math.Abs(p.First - p.Second) <= 1e-12 * scale));

        // fid (random Inception weights): the same distance; KID is refused under MPI.
        var weights = Path.Combine(dir, "inception.safetensors");
        using (var net = InceptionTestNet.Create()) net.save_safetensors(weights);
        var x = TestUtil.WriteIdx(dir, "x", 6, seed: 5);
        var y = TestUtil.WriteIdx(dir, "y", 6, seed: 6);
        string[] fid = ["fid", x, y, "--inception-weights", weights, "--dims", "64", "--no-progress", "--threads", "1", "--device", "cpu"];
        (code, output, err) = TestUtil.Cli([.. fid, "-o", Path.Combine(dir, "plain.json")]);
        Assert.True(code == 0, err + output);
        (code, output, err) = InJob(job, [.. fid, "-o", Path.Combine(dir, "job.json")]);
        Assert.True(code == 0, err + output);
        Assert.Contains("statistics merged from 1 processes", output);
        double Distance(string f) => JsonDocument.Parse(File.ReadAllText(f)).RootElement.GetProperty("distance").GetDouble();
        double plain = Distance(Path.Combine(dir, "plain.json"));
        Assert.True(plain > 0);
        // Sigma from summed outer products and sigma from centred features differ by float64 rounding (1e-15), which
        // the matrix square root of these singular 64x64 covariances (6 images) amplifies to about 1e-8.
        Assert.Equal(plain, Distance(Path.Combine(dir, "job.json")), 1e-6 * plain);
        (code, _, err) = InJob(job, [.. fid, "--kid"]);
        Assert.NotEqual(0, code);
        Assert.Contains("--kid under mpirun", err);
    }

    /// <summary>
    /// FeatureSums.AllReduce's buffer against another process's sums: the features split in two shards, this process
    /// holding one and the other's sums added by the stand-in, give the statistics of all the features.
    /// </summary>
    [Fact]
    public void AllReducedSumsOfTwoShardsAreTheSumsOfAll()
    {
        using var scope = NewDisposeScope();
        var features = randn(new long[] { 10, 4 }, generator: new Generator(5)).to(ScalarType.Float64);
        var mine = FeatureSums.FromFeatures(features[..6], "x", new Shard(0, 2), 10);
        var theirs = FeatureSums.FromFeatures(features[6..], "x", new Shard(1, 2), 10);
        var other = new double[1 + 4 + 16];
        other[0] = theirs.Count;
        Array.Copy(theirs.Sum, 0, other, 1, 4);
        Buffer.BlockCopy(theirs.SumOuter, 0, other, 5 * sizeof(double), 16 * sizeof(double));
        var whole = mine.AllReduce(new StandInCommunicator(0, 2, othersAddDouble: t => other.CopyTo(t, 0))).ToStatistics();
        var direct = FeatureSums.FromFeatures(features, "x", Shard.Whole, 10).ToStatistics();
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(direct.Mu[i], whole.Mu[i], 12);
            for (int j = 0; j < 4; j++) Assert.Equal(direct.Sigma[i, j], whole.Sigma[i, j], 12);
        }
        // A job whose shards do not cover the source is refused.
        var e = Assert.Throws<DdpmException>(() => mine.AllReduce(new StandInCommunicator(0, 2)));
        Assert.Contains("summed 6 of the source's 10 images", e.Message);
    }
}

using Ddpm.Distributed;
using Ddpm.Runs;
using Ddpm.Runtime;
using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Tests.Distributed;

/// <summary>The data-parallel path of the trainer and the collective helpers, with in-process stand-ins for MPI.</summary>
public class DataParallelTests
{
    private static TrainConfig Config(long steps)
    {
        var c = TestUtil.TinyConfig(steps);
        c.Model!.Dropout = 0;
        return c;
    }

    /// <summary>
    /// The data-parallel step (each process's rows' loss summed and divided by B, the gradients summed over the job) with
    /// a job of one equals the single-process step (the batch's mean) up to that rounding: about 1e-7 of the weights.
    /// </summary>
    [Fact]
    public void AJobOfOneTrainsWhatTheSingleProcessTrains()
    {
        using var data = TestUtil.TinyData();
        using var single = Trainer.Start(Config(4), Path.Combine(TestUtil.TempDir(), "a"), data);
        using var job = Trainer.Start(Config(4), Path.Combine(TestUtil.TempDir(), "b"), new StandInCommunicator(), data);
        Assert.True(job.IsWriter);
        for (int i = 0; i < 4; i++)
        {
            single.Advance();
            job.Advance();
        }
        var b = job.Model.state_dict();
        foreach (var (key, t) in single.Model.state_dict())
            Assert.True((t - b[key]).abs().max().item<float>() <= 1e-6, key);
        Assert.Equal(single.ReadWindow().MeanLoss, job.ReadWindow().MeanLoss, 6);
        Assert.Equal(4, job.Communication.Steps);
    }

    /// <summary>Rows are split as evenly as integers allow and cover the batch once.</summary>
    [Theory]
    [InlineData(10, 3)]
    [InlineData(64, 2)]
    [InlineData(7, 7)]
    public void ShardsCoverTheBatchOnce(int batch, int processes)
    {
        var rows = new List<long>();
        for (int r = 0; r < processes; r++)
        {
            var (start, count) = new DataParallel(new StandInCommunicator(r, processes), CPU).Shard(batch);
            Assert.InRange(count, batch / processes, (batch + processes - 1) / processes);
            for (long i = start; i < start + count; i++) rows.Add(i);
        }
        Assert.Equal(Enumerable.Range(0, batch).Select(i => (long)i), rows);
    }

    /// <summary>A stop asked on another process travels with the step's sums: this one stops after the same step and rank 0 saves it.</summary>
    [Fact]
    public void AStopAskedByAnotherProcessStopsThisOneAfterTheSameStep()
    {
        using var data = TestUtil.TinyData();
        int reduced = 0;
        // The other process sends zero gradients and, at its second step, a stop: the flag follows the loss in the buffer
        // (then the time-budget flag and the batch's 4 losses).
        var comm = new StandInCommunicator(0, 2, theirs => { if (++reduced == 2) theirs[^(4 + 2)] = 1; });
        var run = Path.Combine(TestUtil.TempDir(), "run");
        using var trainer = Trainer.Start(Config(10), run, comm, data);
        var result = trainer.Run();
        Assert.True(result.Interrupted);
        Assert.Equal(2, result.Step);
        Assert.Equal(2, CheckpointStore.ReadState(CheckpointStore.Resolve(run)).Step);
    }

    /// <summary>
    /// A spent time budget said by another process (the flag after the stop request) finishes the run on every process
    /// after the same step, as at its last step: not interrupted, with the final checkpoint and grid on rank 0.
    /// </summary>
    [Fact]
    public void ATimeBudgetSpentOnAnotherProcessFinishesTheRunAfterTheSameStep()
    {
        using var data = TestUtil.TinyData();
        int reduced = 0;
        var comm = new StandInCommunicator(0, 2, theirs => { if (++reduced == 3) theirs[^(4 + 1)] = 1; });
        var run = Path.Combine(TestUtil.TempDir(), "run");
        var config = Config(10);
        config.SampleSampler = "ddim";
        config.SampleSteps = 2;
        using var trainer = Trainer.Start(config, run, comm, data);
        var result = trainer.Run();
        Assert.False(result.Interrupted);
        Assert.True(result.TimeLimitReached);
        Assert.Equal(3, result.Step);
        Assert.Equal(3, CheckpointStore.ReadState(CheckpointStore.Resolve(run)).Step);
        Assert.True(result.FinalGrid is not null && File.Exists(result.FinalGrid), "rank 0 draws the final grid");
    }

    /// <summary>A failure on another process fails this one too, with a one-line error, instead of leaving it waiting.</summary>
    [Fact]
    public void AgreeThrowsWhenAnotherProcessFailed()
    {
        var comm = new StandInCommunicator(0, 2, othersAddDouble: flags => flags[0] = 1); // the other process failed
        var e = Assert.Throws<DdpmException>(() => comm.Agree(null, "starting the run"));
        Assert.Equal("starting the run: 1 of 2 processes failed (rank 0 stops too; see their messages)", e.Message);
        var own = new InvalidOperationException("mine");
        Assert.Same(own, Assert.Throws<InvalidOperationException>(() => comm.Agree(own, "x")));
    }

    [Fact]
    public void EachProcessGetsTheGpuOfItsLocalRank()
    {
        Assert.Equal("cuda:3", DeviceSpec.Parse("cuda").ForLocalRank(3, cudaAvailable: true).ToString());
        Assert.Equal("cuda:3", DeviceSpec.Parse("auto").ForLocalRank(3, cudaAvailable: true).ToString());
        Assert.Equal("auto", DeviceSpec.Parse("auto").ForLocalRank(3, cudaAvailable: false).ToString());
        Assert.Equal("cuda:1", DeviceSpec.Parse("cuda:1").ForLocalRank(3, cudaAvailable: true).ToString());
        Assert.Equal("cpu", DeviceSpec.Parse("cpu").ForLocalRank(3, cudaAvailable: true).ToString());
    }

    /// <summary>The launchers' variables: Open MPI's first; without them one process alone, as without MPI.</summary>
    [Fact]
    public void TheLaunchersVariablesSayWhetherThisIsOneOfSeveralProcesses()
    {
        string[] names = ["OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_NTASKS"];
        var saved = names.ToDictionary(n => n, Environment.GetEnvironmentVariable);
        try
        {
            foreach (var n in names) Environment.SetEnvironmentVariable(n, null);
            Assert.False(MpiEnvironment.IsMultiProcess);
            Assert.Null(MpiEnvironment.CommunicatorOrNull());
            Assert.Equal((1, 0), (MpiEnvironment.WorldSize, MpiEnvironment.LocalRank));
            Assert.Equal(5, MpiEnvironment.ThreadsPerProcess(5));
            Environment.SetEnvironmentVariable("OMPI_COMM_WORLD_SIZE", "4");
            Environment.SetEnvironmentVariable("OMPI_COMM_WORLD_LOCAL_RANK", "1");
            Environment.SetEnvironmentVariable("OMPI_COMM_WORLD_LOCAL_SIZE", "2");
            Assert.True(MpiEnvironment.IsMultiProcess);
            Assert.Equal((4, 1, 2), (MpiEnvironment.WorldSize, MpiEnvironment.LocalRank, MpiEnvironment.LocalSize));
            Assert.Equal(Math.Max(1, Environment.ProcessorCount / 2), MpiEnvironment.ThreadsPerProcess(0));
        }
        finally
        {
            foreach (var (n, v) in saved) Environment.SetEnvironmentVariable(n, v);
        }
    }
}

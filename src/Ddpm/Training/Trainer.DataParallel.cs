using TorchSharp;
using Ddpm.Data;
using Ddpm.Distributed;
using Ddpm.Runs;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Training;

/// <summary>Data-parallel training over the processes of an MPI job (see <see cref="DataParallel"/>).</summary>
public sealed partial class Trainer
{
    private readonly DataParallel? _parallel;

    /// <summary>Whether this process writes the run folder: always without a communicator, rank 0 alone with one.</summary>
    public bool IsWriter => _parallel is null || _parallel.Communicator.Rank == 0;

    /// <summary>The job's communicator (null for a single process).</summary>
    public ICommunicator? Communicator => _parallel?.Communicator;

    /// <summary>Seconds this process spent in the per-step all-reduce so far, and the steps it reduced (0 and 0 for a single process).</summary>
    public (double Seconds, long Steps) Communication => _parallel is null ? (0, 0) : (_parallel.CommunicationSeconds, _parallel.Steps);

    /// <summary>The dropout generator's stream: the single process's for rank 0, its own for every other rank.</summary>
    private int DropoutStream => _parallel is null || _parallel.Communicator.Rank == 0 ? 0 : 1000 + _parallel.Communicator.Rank;

    /// <summary>
    /// Starts a run trained by the processes of <paramref name="communicator"/> together: each computes its share of
    /// every global batch of <see cref="TrainConfig.BatchSize"/>; rank 0 alone creates and writes the run folder. Every
    /// process calls it; a failure on any one is reported on all (none is left waiting), and every process then takes
    /// rank 0's weights.
    /// </summary>
    public static Trainer Start(TrainConfig config, string runDir, ICommunicator communicator, ImageDataset? data = null, ModelFactory? model = null)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        return Collectively(communicator, "starting the run", () => StartCore(config, runDir, data, model, communicator));
    }

    /// <summary>
    /// Resumes a run with the processes of <paramref name="communicator"/> (any number: the data order is a function of
    /// the global step). Every process reads the checkpoint (the run folder must be on a file system all of them see);
    /// rank 0 alone writes; every process then takes rank 0's weights, EMA and optimizer state.
    /// </summary>
    public static Trainer Resume(string runDir, ICommunicator communicator, ImageDataset? data = null, Action<TrainConfig>? adjust = null, ModelFactory? model = null)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        return Collectively(communicator, "resuming the run", () => ResumeCore(runDir, data, adjust, model, communicator));
    }

    private static Trainer Collectively(ICommunicator communicator, string what, Func<Trainer> open)
    {
        Trainer? trainer = null;
        Exception? error = null;
        try { trainer = open(); }
        catch (Exception e) { error = e; }
        try
        {
            communicator.Agree(error, what);
            trainer!.BroadcastState();
            return trainer;
        }
        catch
        {
            trainer?.Dispose();
            throw;
        }
    }

    /// <summary>Rank 0's network, EMA and optimizer moments on every process.</summary>
    private void BroadcastState()
    {
        var tensors = new List<Tensor>();
        tensors.AddRange(Model.parameters());
        tensors.AddRange(EmaModel.parameters());
        var sd = _optimizer.state_dict();
        foreach (var s in sd.State.Cast<Adam.State>())
        {
            if (s.exp_avg is not null) tensors.Add(s.exp_avg);
            if (s.exp_avg_sq is not null) tensors.Add(s.exp_avg_sq);
        }
        _parallel!.BroadcastFromRankZero(tensors);
    }

    /// <summary>
    /// This process's rows of the global batch: their loss scaled by 1 / B (so that the processes' parts add up to the
    /// batch's mean), its gradients, then the sums over the processes. Returns the global loss, detached.
    /// </summary>
    private Tensor ShardLossAndGradients(Tensor x0, Tensor t, Tensor? weights, Tensor noise)
    {
        long batch = x0.shape[0];
        var (start, count) = _parallel!.Shard(batch);
        var losses = Diffusion.TrainingLosses(Model, x0.narrow(0, start, count).to(Device), t.narrow(0, start, count).to(Device),
            noise.narrow(0, start, count).to(Device));
        var weighted = weights is null ? losses : losses * weights.narrow(0, start, count).to(Device);
        using Scalar batchScalar = batch.ToScalar(); // held for the whole call: see HeldScalars
        var local = weighted.sum().div(batchScalar);
        local.backward();
        var (loss, all) = _parallel.Reduce(_parameters, local, losses, start, batch);
        _timesteps.Update(t.to(Device), all);
        return loss;
    }
}

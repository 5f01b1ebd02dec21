using System.Diagnostics;
using Ddpm.Distributed;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Training;

/// <summary>
/// Data-parallel training over the processes of an MPI job: each process computes the loss of its rows of the global
/// batch, scaled so that the sum over processes is the global batch's mean loss, and one all-reduce per step sums the
/// gradients, the loss, every example's loss (for the loss-aware timestep sampler) and the processes' stop requests and time-budget flags,
/// packed in one flat float32 buffer. Every process then takes the same optimizer step on the same sums, so the
/// networks stay equal without being sent again. The data order, flips, timesteps and noise are those of the global
/// batch, drawn identically on every process from the step's seed, so N processes of batch B train what one process of
/// batch B trains, up to float rounding (the sum over rows is split into per-process parts).
/// </summary>
internal sealed class DataParallel(ICommunicator communicator, Device device)
{
    public ICommunicator Communicator { get; } = communicator;

    /// <summary>This process asks to stop after the current step (set before each step).</summary>
    public bool StopRequested { get; set; }

    /// <summary>Some process asked to stop in the last step: all stop after it.</summary>
    public bool StopAgreed { get; private set; }

    /// <summary>This process says the run's time budget is spent (rank 0 alone keeps the run's clock; set before each step).</summary>
    public bool TimeUp { get; set; }

    /// <summary>Some process said the time budget was spent in the last step: all finish the run after it.</summary>
    public bool TimeUpAgreed { get; private set; }

    private readonly Stopwatch _communicating = new();

    /// <summary>Seconds spent in the all-reduce calls so far (waiting for the slowest process included).</summary>
    public double CommunicationSeconds => _communicating.Elapsed.TotalSeconds;

    /// <summary>Steps reduced so far.</summary>
    public long Steps { get; private set; }

    /// <summary>This process's rows [Start, Start + Count) of a global batch: the rows are split as evenly as integers allow.</summary>
    public (long Start, long Count) Shard(long batch)
    {
        long rank = Communicator.Rank, size = Communicator.Size;
        long start = rank * batch / size, end = (rank + 1) * batch / size;
        return (start, end - start);
    }

    /// <summary>
    /// Sums the gradients of <paramref name="parameters"/> (in place), the loss parts and the examples' losses over the
    /// processes. <paramref name="shardLosses"/> are this process's rows' losses, from row <paramref name="start"/> of a
    /// batch of <paramref name="batch"/>. Returns the global loss (a scalar) and the global batch's losses, on the device.
    /// </summary>
    public (Tensor Loss, Tensor Losses) Reduce(IReadOnlyList<Parameter> parameters, Tensor localLoss, Tensor shardLosses, long start, long batch)
    {
        using var scope = NewDisposeScope();
        var grads = new List<Tensor>(parameters.Count);
        foreach (var p in parameters)
            if (p.grad is Tensor g) grads.Add(g);
        var allLosses = zeros(batch, dtype: ScalarType.Float32);
        allLosses.narrow(0, start, shardLosses.shape[0]).copy_(shardLosses.detach().to(ScalarType.Float32).cpu());
        var parts = new List<Tensor>(grads.Count + 3);
        foreach (var g in grads) parts.Add(g.detach().to(ScalarType.Float32).flatten().cpu());
        parts.Add(localLoss.detach().to(ScalarType.Float32).reshape(1).cpu());
        parts.Add(tensor(new[] { StopRequested ? 1f : 0f, TimeUp ? 1f : 0f }));
        parts.Add(allLosses);
        var buffer = cat(parts, 0).data<float>().ToArray();

        _communicating.Start();
        Communicator.AllReduceSum(buffer);
        _communicating.Stop();
        Steps++;

        var summed = tensor(buffer).to(device);
        long offset = 0;
        using (no_grad())
            foreach (var g in grads)
            {
                long n = g.numel();
                g.copy_(summed.narrow(0, offset, n).view_as(g));
                offset += n;
            }
        var loss = summed.narrow(0, offset, 1).reshape(Array.Empty<long>());
        StopAgreed = buffer[offset + 1] > 0;
        TimeUpAgreed = buffer[offset + 2] > 0;
        var losses = summed.narrow(0, offset + 3, batch);
        return (loss.MoveToOuterDisposeScope(), losses.MoveToOuterDisposeScope());
    }

    /// <summary>Replaces <paramref name="tensors"/> on every process by rank 0's (one broadcast of one flat buffer).</summary>
    public void BroadcastFromRankZero(IReadOnlyList<Tensor> tensors)
    {
        using var scope = NewDisposeScope();
        if (tensors.Count == 0) return;
        var buffer = cat(tensors.Select(t => t.detach().to(ScalarType.Float32).flatten().cpu()).ToList(), 0).data<float>().ToArray();
        Communicator.Broadcast(buffer);
        var all = tensor(buffer);
        long offset = 0;
        using (no_grad())
            foreach (var t in tensors)
            {
                long n = t.numel();
                t.copy_(all.narrow(0, offset, n).view_as(t).to(t.dtype).to(t.device));
                offset += n;
            }
    }
}

namespace Ddpm.Distributed;

/// <summary>
/// The collective operations data-parallel training and sharded evaluation need, over the processes of one job.
/// Every process must call the same operations in the same order with buffers of the same length.
/// </summary>
public interface ICommunicator : IDisposable
{
    /// <summary>This process's index, 0 to <see cref="Size"/> - 1; rank 0 alone writes files.</summary>
    int Rank { get; }

    /// <summary>The number of processes.</summary>
    int Size { get; }

    /// <summary>This process's index among the processes of its machine (for one GPU per process).</summary>
    int LocalRank { get; }

    /// <summary>Replaces <paramref name="buffer"/> on every process by the element-wise sum over all processes.</summary>
    void AllReduceSum(float[] buffer);

    /// <summary>Replaces <paramref name="buffer"/> on every process by the element-wise sum over all processes.</summary>
    void AllReduceSum(double[] buffer);

    /// <summary>Replaces <paramref name="buffer"/> on every process by rank <paramref name="root"/>'s.</summary>
    void Broadcast(float[] buffer, int root = 0);

    /// <summary>Replaces <paramref name="buffer"/> on every process by rank <paramref name="root"/>'s.</summary>
    void Broadcast(byte[] buffer, int root = 0);

    /// <summary>Returns when every process has called it.</summary>
    void Barrier();
}

/// <summary>Collective helpers built on <see cref="ICommunicator"/>.</summary>
public static class CommunicatorExtensions
{
    /// <summary>
    /// A collective check that keeps the processes together when one of them fails: every process reports whether its
    /// part succeeded; a process whose own part failed rethrows its error, and the others throw a one-line error naming
    /// how many processes failed, so none is left waiting in a later collective operation.
    /// </summary>
    public static void Agree(this ICommunicator communicator, Exception? local, string what)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        var flag = new double[] { local is null ? 0 : 1 };
        communicator.AllReduceSum(flag);
        if (local is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(local);
        if (flag[0] > 0)
            throw new DdpmException($"{what}: {flag[0]:0} of {communicator.Size} processes failed (rank {communicator.Rank} stops too; see their messages)");
    }
}

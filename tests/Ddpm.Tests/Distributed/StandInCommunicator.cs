using Ddpm.Distributed;

namespace Ddpm.Tests.Distributed;

/// <summary>
/// One process of a job, in this process: its rank and size, and what the other processes add to each all-reduce
/// (nothing when not given: a job of one, or others that contribute zeros). Broadcasts keep this process's values.
/// </summary>
internal sealed class StandInCommunicator(int rank = 0, int size = 1, Action<float[]>? othersAddFloat = null, Action<double[]>? othersAddDouble = null)
    : ICommunicator
{
    public int Rank => rank;
    public int Size => size;
    public int LocalRank => 0;

    /// <summary>All-reduce calls so far.</summary>
    public int Reductions { get; private set; }

    public void AllReduceSum(float[] buffer) => Add(buffer, othersAddFloat);
    public void AllReduceSum(double[] buffer) => Add(buffer, othersAddDouble);

    private void Add<T>(T[] buffer, Action<T[]>? others) where T : struct, System.Numerics.INumber<T>
    {
        Reductions++;
        if (others is null) return;
        var theirs = new T[buffer.Length];
        others(theirs);
        for (int i = 0; i < buffer.Length; i++) buffer[i] += theirs[i];
    }

    public void Broadcast(float[] buffer, int root = 0) { }
    public void Broadcast(byte[] buffer, int root = 0) { }
    public void Barrier() { }
    public void Dispose() { }
}

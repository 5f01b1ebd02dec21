using static TorchSharp.torch;

namespace Ddpm.Data;

/// <summary>
/// Deterministic shuffled batches: the indices of the batch at any training step are a pure function of
/// (seed, dataset size, batch size, step), so training can resume at any step without saved sampler state.
/// <para>The index stream is the concatenation of epoch permutations: epoch e is a Fisher-Yates shuffle of 0..N-1 driven by
/// SplitMix64 seeded from (seed, e), with unbiased bounded draws (rejection), independent of the .NET version.
/// Step s takes stream positions s*B .. s*B+B-1, so batches run on across epoch boundaries without partial batches:
/// a batch straddling a boundary ends epoch e and starts epoch e+1 (it may then hold an index twice). Every index
/// appears exactly once per epoch.</para>
/// </summary>
public sealed class BatchSampler
{
    public int DatasetSize { get; }
    public int BatchSize { get; }
    public long Seed { get; }

    // A small cache of recent permutations: sequential training touches at most two epochs per batch.
    private readonly Dictionary<long, int[]> _cache = new();
    private readonly Queue<long> _cacheOrder = new();
    private const int CacheSize = 3;

    public BatchSampler(int datasetSize, int batchSize, long seed)
    {
        if (datasetSize < 1) throw new DdpmException($"dataset size {datasetSize}: need at least one image to draw batches from");
        if (batchSize < 1) throw new DdpmException($"batch size {batchSize}: must be at least 1");
        DatasetSize = datasetSize;
        BatchSize = batchSize;
        Seed = seed;
    }

    /// <summary>The epoch in which the first image of step <paramref name="step"/> lies.</summary>
    public long EpochOfStep(long step) => checked(step * BatchSize) / DatasetSize;

    /// <summary>Steps per epoch, N / B (fractional when B does not divide N).</summary>
    public double StepsPerEpoch => (double)DatasetSize / BatchSize;

    /// <summary>The dataset indices of the batch at <paramref name="step"/> (0-based).</summary>
    public long[] IndicesForStep(long step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        long start = checked(step * BatchSize);
        var result = new long[BatchSize];
        for (int i = 0; i < BatchSize; i++)
        {
            long pos = start + i;
            long epoch = pos / DatasetSize;
            result[i] = Permutation(epoch)[(int)(pos % DatasetSize)];
        }
        return result;
    }

    /// <summary>The images of the batch at <paramref name="step"/>: a new (B, C, H, W) tensor on the CPU.</summary>
    public Tensor GetBatch(ImageDataset data, long step)
    {
        ArgumentNullException.ThrowIfNull(data);
        return GetBatch(data.Images, step);
    }

    /// <summary>The batch at <paramref name="step"/> gathered from <paramref name="images"/> (N, C, H, W), on their device.</summary>
    public Tensor GetBatch(Tensor images, long step)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.shape[0] != DatasetSize)
            throw new ArgumentException($"sampler was built for {DatasetSize} images; the dataset has {images.shape[0]}", nameof(images));
        using var idx = tensor(IndicesForStep(step), ScalarType.Int64, device: images.device);
        return images.index_select(0, idx);
    }

    /// <summary>The permutation of epoch <paramref name="epoch"/> (a copy is not made: do not modify it).</summary>
    public IReadOnlyList<int> PermutationOf(long epoch) => Permutation(epoch);

    private int[] Permutation(long epoch)
    {
        if (_cache.TryGetValue(epoch, out var cached)) return cached;
        var perm = Shuffle(DatasetSize, Seed, epoch);
        _cache[epoch] = perm;
        _cacheOrder.Enqueue(epoch);
        if (_cacheOrder.Count > CacheSize) _cache.Remove(_cacheOrder.Dequeue());
        return perm;
    }

    /// <summary>Fisher-Yates shuffle of 0..n-1 with SplitMix64 seeded by (seed, epoch).</summary>
    public static int[] Shuffle(int n, long seed, long epoch)
    {
        var perm = new int[n];
        for (int i = 0; i < n; i++) perm[i] = i;
        var rng = new SplitMix64(SplitMix64.Mix(unchecked((ulong)seed + 0x9E3779B97F4A7C15UL)) ^ SplitMix64.Mix(unchecked((ulong)epoch * 0xD1B54A32D192ED03UL + 0x632BE59BD9B4E019UL)));
        for (int i = n - 1; i > 0; i--)
        {
            int j = (int)rng.NextBelow((ulong)(i + 1));
            (perm[i], perm[j]) = (perm[j], perm[i]);
        }
        return perm;
    }
}

/// <summary>SplitMix64 (Steele, Lea, Flood 2014): a tiny, fixed, platform-independent 64-bit generator.</summary>
public struct SplitMix64
{
    private ulong _state;

    public SplitMix64(ulong seed) => _state = seed;

    /// <summary>The SplitMix64 output function (a strong 64-bit mixer).</summary>
    public static ulong Mix(ulong z)
    {
        unchecked
        {
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    public ulong Next()
    {
        unchecked { _state += 0x9E3779B97F4A7C15UL; }
        return Mix(_state);
    }

    /// <summary>A uniform integer in [0, bound), unbiased (draws below 2^64 mod bound are rejected).</summary>
    public ulong NextBelow(ulong bound)
    {
        if (bound == 0) throw new ArgumentOutOfRangeException(nameof(bound));
        ulong threshold = unchecked(0UL - bound) % bound;
        while (true)
        {
            ulong r = Next();
            if (r >= threshold) return r % bound;
        }
    }
}

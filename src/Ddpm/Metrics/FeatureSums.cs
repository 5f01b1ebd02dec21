using Ddpm.Distributed;
using TorchSharp;
using static Ddpm.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Ddpm.Metrics;

/// <summary>
/// Partial feature statistics of one shard of a source, which add up exactly: the count n, the sum of the feature
/// vectors (D) and the sum of their outer products (D x D), all float64, with the extractor that made them, the shard
/// (index and count) and the number of images of the whole (unsharded) source. <see cref="Merge"/> adds the parts of
/// every shard and <see cref="ToStatistics"/> turns the total into mu and the N-1 covariance, equal to
/// <see cref="FeatureStatistics.FromFeatures(Tensor)"/> of all the features at once up to float64 rounding.
/// <para>Saved as an .npz (<see cref="SaveNpz"/>) with the arrays <c>n</c> (shape ()), <c>sum</c> (D,),
/// <c>sum_outer</c> (D, D), <c>shard</c> ([index, count]), <c>source_count</c> (()) and <c>extractor</c> (the
/// extractor's name as Unicode code points: <c>''.join(map(chr, a.astype(int)))</c> in Python). It holds no
/// <c>mu</c> or <c>sigma</c>, so no FID tool mistakes it for statistics.</para>
/// </summary>
public sealed class FeatureSums
{
    /// <summary>Array names of the .npz.</summary>
    public const string CountKey = "n", SumKey = "sum", SumOuterKey = "sum_outer", ShardKey = "shard",
        SourceCountKey = "source_count", ExtractorKey = "extractor";

    public FeatureSums(string extractor, Shard shard, long sourceCount, double count, double[] sum, double[,] sumOuter)
    {
        ArgumentNullException.ThrowIfNull(extractor);
        ArgumentNullException.ThrowIfNull(shard);
        ArgumentNullException.ThrowIfNull(sum);
        ArgumentNullException.ThrowIfNull(sumOuter);
        if (sum.Length == 0) throw new DdpmException("feature sums: 0-dimensional features");
        if (sumOuter.GetLength(0) != sum.Length || sumOuter.GetLength(1) != sum.Length)
            throw new DdpmException($"feature sums: sum_outer is {sumOuter.GetLength(0)}x{sumOuter.GetLength(1)} but sum has length {sum.Length}");
        if (count < 0 || count != Math.Floor(count) || !double.IsFinite(count))
            throw new DdpmException($"feature sums: count {count} is not a whole number of images");
        if (sourceCount < count) throw new DdpmException($"feature sums: {count} images of a source of {sourceCount}");
        Extractor = extractor;
        Shard = shard;
        SourceCount = sourceCount;
        Count = count;
        Sum = sum;
        SumOuter = sumOuter;
    }

    /// <summary>The feature extractor's name (<see cref="IFeatureExtractor.Name"/>).</summary>
    public string Extractor { get; }

    /// <summary>The shard these sums are of (<see cref="Shard.Whole"/> for merged sums).</summary>
    public Shard Shard { get; }

    /// <summary>Images of the whole source, all shards together.</summary>
    public long SourceCount { get; }

    /// <summary>Number of feature vectors summed (float64, as stored).</summary>
    public double Count { get; }

    /// <summary>Sum of the feature vectors, length <see cref="Dim"/>.</summary>
    public double[] Sum { get; }

    /// <summary>Sum of the outer products x x^T, <see cref="Dim"/> x <see cref="Dim"/>.</summary>
    public double[,] SumOuter { get; }

    public int Dim => Sum.Length;

    /// <summary>
    /// Sums of an (n, D) feature tensor of any floating type (n may be 0), in float64 on the CPU: a float32 feature's
    /// products are exact in float64, so only the additions round.
    /// </summary>
    public static FeatureSums FromFeatures(Tensor features, string extractor, Shard shard, long sourceCount)
    {
        ArgumentNullException.ThrowIfNull(features);
        if (features.dim() != 2)
            throw new DdpmException($"feature sums: features must be (N, D), got shape ({string.Join(", ", features.shape)})");
        int d = (int)features.shape[1];
        using var scope = NewDisposeScope();
        var x = features.detach().to(CPU).to_type(ScalarType.Float64);
        var s = x.sum(new long[] { 0 });
        var outer = x.t().matmul(x);
        // Scalars passed to TorchSharp are explicit and held for the whole call; see Ddpm.Runtime.HeldScalars.
        using var half = 0.5.ToScalar();
        outer = outer.add(outer.t(), Int1) * half; // (outer + outer^T) / 2: exactly symmetric
        var flat = outer.contiguous().data<double>().ToArray();
        var m = new double[d, d];
        Buffer.BlockCopy(flat, 0, m, 0, flat.Length * sizeof(double));
        return new FeatureSums(extractor, shard, sourceCount, features.shape[0], s.data<double>().ToArray(), m);
    }

    /// <summary>
    /// The sums of every process of an MPI job, each holding its own shard's (shard = rank of size): one all-reduce of
    /// n, the sum and the outer products in float64. Every process gets the whole source's sums (shard
    /// <see cref="Shard.Whole"/>); with two processes the additions are those of <see cref="Merge"/>, bit for bit.
    /// </summary>
    public FeatureSums AllReduce(ICommunicator communicator)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        int d = Dim;
        var buffer = new double[1 + d + d * d];
        buffer[0] = Count;
        Array.Copy(Sum, 0, buffer, 1, d);
        Buffer.BlockCopy(SumOuter, 0, buffer, (1 + d) * sizeof(double), d * d * sizeof(double));
        communicator.AllReduceSum(buffer);
        var sum = new double[d];
        var outer = new double[d, d];
        Array.Copy(buffer, 1, sum, 0, d);
        Buffer.BlockCopy(buffer, (1 + d) * sizeof(double), outer, 0, d * d * sizeof(double));
        if (buffer[0] != SourceCount)
            throw new DdpmException($"{Extractor}: the {communicator.Size} processes summed {buffer[0]} of the source's {SourceCount} images (each must take the shard of its rank)");
        return new FeatureSums(Extractor, Shard.Whole, SourceCount, buffer[0], sum, outer);
    }

    /// <summary>Sums of no features (a shard that owns no image).</summary>
    public static FeatureSums Empty(int dims, string extractor, Shard shard, long sourceCount) =>
        new(extractor, shard, sourceCount, 0, new double[dims], new double[dims, dims]);

    /// <summary>
    /// The sums of every shard of one source, added. Refuses, naming the files (<paramref name="names"/>, parallel to
    /// <paramref name="parts"/>; indices when null), parts of different extractors, dimensions, shard counts or source
    /// sizes, a shard given twice and a missing shard. The parts are added in shard order whatever order they are given
    /// in, so the result does not depend on it, bit for bit.
    /// </summary>
    public static FeatureSums Merge(IReadOnlyList<FeatureSums> parts, IReadOnlyList<string>? names = null)
    {
        ArgumentNullException.ThrowIfNull(parts);
        if (parts.Count == 0) throw new DdpmException("feature sums: nothing to merge");
        if (names is not null && names.Count != parts.Count) throw new ArgumentException("one name per part", nameof(names));
        string Name(int i) => names?[i] ?? $"part {i}";
        var first = parts[0];
        var byShard = new Dictionary<int, int>();
        for (int i = 0; i < parts.Count; i++)
        {
            var p = parts[i];
            if (p.Extractor != first.Extractor)
                throw new DdpmException($"{Name(i)}: features of {p.Extractor}, but {Name(0)} holds {first.Extractor}'s: parts of different extractors do not merge");
            if (p.Dim != first.Dim)
                throw new DdpmException($"{Name(i)}: {p.Dim}-dimensional features, but {Name(0)} holds {first.Dim}: parts of different dimensions do not merge");
            if (p.Shard.Count != first.Shard.Count)
                throw new DdpmException($"{Name(i)}: shard {p.Shard} of a job of {p.Shard.Count} shards, but {Name(0)} is shard {first.Shard}: parts of different jobs do not merge");
            if (p.SourceCount != first.SourceCount)
                throw new DdpmException($"{Name(i)}: part of a source of {p.SourceCount} images, but {Name(0)} is of {first.SourceCount}: parts of different sources do not merge");
            if (byShard.TryGetValue(p.Shard.Index, out int j))
                throw new DdpmException($"{Name(i)}: shard {p.Shard} given twice (also {Name(j)})");
            byShard[p.Shard.Index] = i;
        }
        var missing = Enumerable.Range(0, first.Shard.Count).Where(k => !byShard.ContainsKey(k)).ToList();
        if (missing.Count > 0)
            throw new DdpmException($"shard{(missing.Count > 1 ? "s" : "")} {string.Join(", ", missing.Take(8).Select(k => $"{k}/{first.Shard.Count}"))}{(missing.Count > 8 ? ", ..." : "")} missing: every shard's part is needed");
        int d = first.Dim;
        double n = 0;
        var sum = new double[d];
        var outer = new double[d, d];
        for (int k = 0; k < first.Shard.Count; k++)
        {
            var p = parts[byShard[k]];
            n += p.Count;
            for (int a = 0; a < d; a++) sum[a] += p.Sum[a];
            for (int a = 0; a < d; a++)
                for (int b = 0; b < d; b++) outer[a, b] += p.SumOuter[a, b];
        }
        if (n != first.SourceCount)
            throw new DdpmException($"the parts hold {n} images together, but their source has {first.SourceCount}: not the parts of one job");
        return new FeatureSums(first.Extractor, Shard.Whole, first.SourceCount, n, sum, outer);
    }

    /// <summary>
    /// Mean sum / n and covariance (sum_outer - sum sum^T / n) / (n - 1), as pytorch-fid's (numpy.cov's N-1 denominator).
    /// Needs at least 2 images.
    /// </summary>
    public FeatureStatistics ToStatistics()
    {
        if (Count < 2) throw new DdpmException($"feature sums: need at least 2 feature vectors for a covariance, got {Count}");
        int d = Dim;
        var mu = new double[d];
        for (int a = 0; a < d; a++) mu[a] = Sum[a] / Count;
        var sigma = new double[d, d];
        for (int a = 0; a < d; a++)
            for (int b = a; b < d; b++)
            {
                double v = (SumOuter[a, b] - Sum[a] * Sum[b] / Count) / (Count - 1);
                sigma[a, b] = v;
                sigma[b, a] = v;
            }
        return new FeatureStatistics(mu, sigma, (long)Count);
    }

    /// <summary>Saves the sums as an .npz (atomic write); see the class summary for its arrays.</summary>
    public void SaveNpz(string path)
    {
        int d = Dim;
        var flat = new double[(long)d * d];
        Buffer.BlockCopy(SumOuter, 0, flat, 0, flat.Length * sizeof(double));
        NpzFile.Write(path, new Dictionary<string, NpyArray>
        {
            [CountKey] = new NpyArray(Array.Empty<long>(), new[] { Count }),
            [SumKey] = new NpyArray(new long[] { d }, (double[])Sum.Clone()),
            [SumOuterKey] = new NpyArray(new long[] { d, d }, flat),
            [ShardKey] = new NpyArray(new long[] { 2 }, new double[] { Shard.Index, Shard.Count }),
            [SourceCountKey] = new NpyArray(Array.Empty<long>(), new double[] { SourceCount }),
            [ExtractorKey] = new NpyArray(new long[] { Extractor.Length }, Extractor.Select(c => (double)c).ToArray()),
        });
    }

    /// <summary>Whether the arrays of an .npz are partial sums (they hold <c>sum_outer</c>) rather than statistics.</summary>
    public static bool AreSums(IReadOnlyDictionary<string, NpyArray> arrays) => arrays.ContainsKey(SumOuterKey);

    /// <summary>Whether <paramref name="path"/> is an .npz of partial sums (see <see cref="AreSums"/>).</summary>
    public static bool IsSumsFile(string path) => File.Exists(path) && AreSums(NpzFile.Read(path));

    /// <summary>Loads sums saved by <see cref="SaveNpz"/>; a missing or malformed array is a one-line error naming the file.</summary>
    public static FeatureSums LoadNpz(string path)
    {
        var arrays = NpzFile.Read(path);
        if (!AreSums(arrays))
        {
            if (arrays.ContainsKey("mu"))
                throw new DdpmException($"{path}: holds statistics (mu, sigma), not the partial sums of a shard");
            throw new DdpmException($"{path}: array '{SumOuterKey}' missing: not the partial sums of a shard");
        }
        NpyArray Get(string key) => arrays.TryGetValue(key, out var a) ? a : throw new DdpmException($"{path}: array '{key}' missing");
        var n = Get(CountKey);
        var sum = Get(SumKey);
        var outer = Get(SumOuterKey);
        var shard = Get(ShardKey);
        var source = Get(SourceCountKey);
        var name = Get(ExtractorKey);
        if (n.Data.Length != 1) throw new DdpmException($"{path}: array '{CountKey}' must hold one number, has shape {NpyArray.ShapeText(n.Shape)}");
        if (source.Data.Length != 1) throw new DdpmException($"{path}: array '{SourceCountKey}' must hold one number, has shape {NpyArray.ShapeText(source.Shape)}");
        if (sum.Shape.Length != 1) throw new DdpmException($"{path}: array '{SumKey}' must be 1-D, has shape {NpyArray.ShapeText(sum.Shape)}");
        long d = sum.Shape[0];
        if (outer.Shape.Length != 2 || outer.Shape[0] != d || outer.Shape[1] != d)
            throw new DdpmException($"{path}: array '{SumOuterKey}' must have shape ({d}, {d}) to match '{SumKey}', has {NpyArray.ShapeText(outer.Shape)}");
        if (shard.Data.Length != 2 || shard.Data.Any(v => v != Math.Floor(v) || Math.Abs(v) > int.MaxValue))
            throw new DdpmException($"{path}: array '{ShardKey}' must hold [index, count]");
        if (name.Shape.Length != 1 || name.Data.Any(v => v != Math.Floor(v) || v < 0 || v > char.MaxValue))
            throw new DdpmException($"{path}: array '{ExtractorKey}' must hold the extractor's name as code points");
        foreach (var (key, a) in new[] { (SumKey, sum), (SumOuterKey, outer), (CountKey, n) })
            for (int i = 0; i < a.Data.Length; i++)
                if (!double.IsFinite(a.Data[i])) throw new DdpmException($"{path}: array '{key}' holds {a.Data[i]} (sums must be finite)");
        Shard part;
        try { part = new Shard((int)shard.Data[0], (int)shard.Data[1]); }
        catch (DdpmException e) { throw new DdpmException($"{path}: array '{ShardKey}': {e.Problem ?? e.Message}", e); }
        var m = new double[d, d];
        Buffer.BlockCopy(outer.Data, 0, m, 0, outer.Data.Length * sizeof(double));
        try
        {
            return new FeatureSums(new string(name.Data.Select(v => (char)v).ToArray()), part, (long)source.Data[0], n.Data[0], sum.Data, m);
        }
        catch (DdpmException e) { throw new DdpmException($"{path}: {e.Message}", e); }
    }
}

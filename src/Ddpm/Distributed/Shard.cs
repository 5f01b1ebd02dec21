using System.Globalization;

namespace Ddpm.Distributed;

/// <summary>
/// One of <see cref="Count"/> independent parts of a job (a cluster array task: Slurm's <c>SLURM_ARRAY_TASK_ID</c> of
/// an array of <see cref="Count"/>, a Kubernetes Indexed Job's completion index), written <c>INDEX/COUNT</c>.
/// <para>The rule is round-robin over units: shard i owns unit u when u mod COUNT = i. A unit is a batch of samples
/// when images are generated (batch b is drawn with seed + b, so a shard draws exactly the images one process would
/// draw for those batches) and a block of consecutive images (as many as a batch) when a data set is read, so that
/// each shard reads the very batches one process reads. The shards of one job are disjoint and together own
/// every unit, so their outputs together are the output of one process. A shard may own no unit at all (more shards
/// than batches); it then has nothing to do.</para>
/// </summary>
public sealed record Shard
{
    /// <summary>The whole job: one shard of one.</summary>
    public static Shard Whole { get; } = new(0, 1);

    /// <summary>This shard's index, in [0, <see cref="Count"/>).</summary>
    public int Index { get; }

    /// <summary>The number of shards of the job, at least 1.</summary>
    public int Count { get; }

    public Shard(int index, int count)
    {
        if (count < 1) throw DdpmException.ForSetting("shard", $"{index}/{count}: the shard count must be at least 1");
        if (index < 0 || index >= count)
            throw DdpmException.ForSetting("shard", $"{index}/{count}: the index must be in [0, {count}) (0-based, as an array job's task index)");
        Index = index;
        Count = count;
    }

    /// <summary>True for <see cref="Whole"/>: the job is not split.</summary>
    public bool IsWhole => Count == 1;

    /// <summary>Parses <c>INDEX/COUNT</c> (e.g. <c>3/8</c>); a one-line error names the text otherwise.</summary>
    public static Shard Parse(string text)
    {
        if (string.IsNullOrWhiteSpace(text)) throw DdpmException.ForSetting("shard", ": empty; give INDEX/COUNT, e.g. 0/8");
        var parts = text.Trim().Split('/');
        if (parts.Length != 2
            || !int.TryParse(parts[0], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int index)
            || !int.TryParse(parts[1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int count))
            throw DdpmException.ForSetting("shard", $"{text}: must be INDEX/COUNT with whole numbers, e.g. 0/8");
        return new Shard(index, count);
    }

    /// <summary>Whether this shard owns unit <paramref name="unit"/> (a sample batch or an image index).</summary>
    public bool Owns(long unit) => unit >= 0 && unit % Count == Index;

    /// <summary>How many of the units 0 .. <paramref name="units"/> - 1 this shard owns.</summary>
    public long OwnedOf(long units) => units <= Index ? 0 : (units - 1 - Index) / Count + 1;

    /// <summary>The sample batches this shard draws of <paramref name="count"/> images in batches of <paramref name="batchSize"/>, in order.</summary>
    public IEnumerable<int> Batches(int count, int batchSize)
    {
        if (count < 0) throw DdpmException.ForSetting("count", $"{count}: must not be negative");
        if (batchSize < 1) throw DdpmException.ForSetting("batch_size", $"{batchSize}: must be at least 1");
        int batches = (int)(((long)count + batchSize - 1) / batchSize);
        for (int b = Index; b < batches; b += Count) yield return b;
    }

    /// <summary>The number of images in this shard's batches (<see cref="Batches"/>).</summary>
    public int ImagesInBatches(int count, int batchSize) =>
        Batches(count, batchSize).Sum(b => Math.Min(batchSize, count - b * batchSize));

    /// <summary><c>INDEX/COUNT</c>, as <see cref="Parse"/> reads it.</summary>
    public override string ToString() => $"{Index}/{Count}";
}

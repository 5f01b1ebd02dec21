using static TorchSharp.torch;

namespace Ddpm.Metrics;

/// <summary>
/// How often each class is predicted (or labelled) in a set of images: counts and fractions, with distances to the uniform
/// histogram and to another histogram (e.g. that of the real data). A generator that drops or favours classes shows here
/// even when its images look fine one by one.
/// </summary>
public sealed class ClassHistogram
{
    public long[] Counts { get; }
    public long Total { get; }
    public int Classes => Counts.Length;

    /// <summary>Counts / Total.</summary>
    public double[] Fractions { get; }

    public ClassHistogram(long[] counts)
    {
        ArgumentNullException.ThrowIfNull(counts);
        if (counts.Length < 1) throw new DdpmException("class histogram: no classes");
        if (counts.Any(c => c < 0)) throw new DdpmException("class histogram: negative count");
        Counts = (long[])counts.Clone();
        Total = counts.Sum();
        if (Total == 0) throw new DdpmException("class histogram: no images");
        Fractions = Counts.Select(c => (double)c / Total).ToArray();
    }

    /// <summary>The histogram of class indices in [0, classes).</summary>
    public static ClassHistogram FromPredictions(IEnumerable<long> predicted, int classes)
    {
        ArgumentNullException.ThrowIfNull(predicted);
        var counts = new long[classes];
        foreach (var p in predicted)
        {
            if (p < 0 || p >= classes) throw new DdpmException($"class histogram: class {p} outside [0, {classes})");
            counts[p]++;
        }
        return new ClassHistogram(counts);
    }

    /// <summary>The histogram of the argmax of each row of logits (N, K); ties go to the lowest class.</summary>
    public static ClassHistogram FromLogits(Tensor logits)
    {
        ArgumentNullException.ThrowIfNull(logits);
        if (logits.dim() != 2) throw new DdpmException($"class histogram: logits must be (N, K), got shape ({string.Join(", ", logits.shape)})");
        using var scope = NewDisposeScope();
        var arg = logits.detach().to(CPU).argmax(1).data<long>().ToArray();
        return FromPredictions(arg, (int)logits.shape[1]);
    }

    /// <summary>Total variation distance 1/2 sum_k |p_k - q_k|, in [0, 1].</summary>
    public double TotalVariation(ClassHistogram other)
    {
        CheckSameClasses(other);
        double s = 0;
        for (int k = 0; k < Classes; k++) s += Math.Abs(Fractions[k] - other.Fractions[k]);
        return 0.5 * s;
    }

    /// <summary>Total variation distance from the uniform histogram: 1/2 sum_k |p_k - 1/K|.</summary>
    public double TotalVariationFromUniform() => 0.5 * Fractions.Sum(p => Math.Abs(p - 1.0 / Classes));

    /// <summary>KL(p || q) = sum_k p_k ln(p_k / q_k) in nats (0 ln 0 = 0; +infinity when some q_k = 0 &lt; p_k).</summary>
    public double KlDivergence(ClassHistogram other)
    {
        CheckSameClasses(other);
        double s = 0;
        for (int k = 0; k < Classes; k++)
        {
            double p = Fractions[k], q = other.Fractions[k];
            if (p == 0) continue;
            if (q == 0) return double.PositiveInfinity;
            s += p * Math.Log(p / q);
        }
        return s;
    }

    /// <summary>KL(p || uniform) = ln K - H(p) in nats: 0 for a perfectly balanced set, ln K when one class takes all.</summary>
    public double KlFromUniform()
    {
        double h = 0;
        foreach (var p in Fractions) if (p > 0) h -= p * Math.Log(p);
        return Math.Log(Classes) - h;
    }

    private void CheckSameClasses(ClassHistogram other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.Classes != Classes)
            throw new DdpmException($"class histograms over {Classes} and {other.Classes} classes cannot be compared");
    }
}

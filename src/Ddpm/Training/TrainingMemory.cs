using Ddpm.Models;

namespace Ddpm.Training;

/// <summary>
/// The memory a training step of the U-Net needs, estimated from its configuration before anything is allocated, so a
/// batch far too large for the machine is refused with a message instead of growing until the kernel kills a process.
/// <para>Estimate = batch x <see cref="ModelStats.CountTrainingActivations"/> x 4 bytes x <see cref="BackwardFactor"/>
/// + parameters x 4 bytes x 5 (the weights, their EMA, the gradients and Adam's two moments). It is a rough upper
/// bound: the activations count every tensor a step may keep, and the factor covers the gradients the backward pass
/// holds at once. Checked only for the CPU, whose memory is the machine's (a GPU reports running out by itself).</para>
/// <para>Measured once (mnist-small, 2 steps on the CPU, peak resident memory at batch 8 and 256): 6.9 MB more per
/// image; the estimate gives 10.4 MB per image (7.0 MB of counted activations x 1.5).</para>
/// </summary>
public static class TrainingMemory
{
    /// <summary>The share the backward pass adds to the activations kept (gradients of the layer being differentiated).</summary>
    public const double BackwardFactor = 1.5;

    /// <summary>The estimated bytes a training step of <paramref name="model"/> with <paramref name="batchSize"/> images needs (see the class summary).</summary>
    public static long EstimateBytes(UNetConfig model, int batchSize)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (batchSize < 1) throw DdpmException.ForSetting("batch_size", $"{batchSize}: must be at least 1");
        double activations = (double)batchSize * ModelStats.CountTrainingActivations(model) * sizeof(float) * BackwardFactor;
        double state = 5.0 * ModelStats.CountParameters(model) * sizeof(float);
        return (long)Math.Min(activations + state, long.MaxValue);
    }

    /// <summary>
    /// The memory this process may still take: MemAvailable of /proc/meminfo on Linux, capped by the runtime's limit
    /// (GC.GetGCMemoryInfo().TotalAvailableMemoryBytes: the machine's memory, or a container's limit).
    /// </summary>
    public static long AvailableBytes()
    {
        long limit = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        long? meminfo = MemAvailable();
        return meminfo is long m && m > 0 ? Math.Min(m, limit) : limit;
    }

    private static long? MemAvailable()
    {
        try
        {
            if (!OperatingSystem.IsLinux()) return null;
            foreach (var line in File.ReadLines("/proc/meminfo"))
            {
                if (!line.StartsWith("MemAvailable:", StringComparison.Ordinal)) continue;
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return parts.Length >= 2 && long.TryParse(parts[1], out long kb) ? kb * 1024 : null;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return null;
    }

    /// <summary>Refuses <paramref name="batchSize"/> when the estimate for <paramref name="model"/> exceeds <paramref name="availableBytes"/>.</summary>
    public static void Check(UNetConfig model, int batchSize, long availableBytes)
    {
        long need = EstimateBytes(model, batchSize);
        if (need <= availableBytes) return;
        long perImage = (long)(ModelStats.CountTrainingActivations(model) * sizeof(float) * BackwardFactor);
        long fits = perImage > 0 ? Math.Max(0, (availableBytes - 5L * ModelStats.CountParameters(model) * sizeof(float)) / perImage) : 0;
        throw DdpmException.ForSetting("batch_size",
            $"{batchSize}: a training step needs about {Gb(need)} of memory (estimated) but {Gb(availableBytes)} is available; about {fits} images per batch fit");
    }

    private static string Gb(long bytes) => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):0.0} GB" : $"{bytes / (double)(1L << 20):0} MB";
}

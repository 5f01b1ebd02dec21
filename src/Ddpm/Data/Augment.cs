using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Data;

/// <summary>Data augmentation for training batches.</summary>
public static class Augment
{
    /// <summary>
    /// Mirrors each image of a batch (N, C, H, W) left-right independently with probability 0.5, returning a new tensor
    /// (the input is unchanged). The coin flips are N uniform draws from <paramref name="generator"/> (flip when u &lt; 0.5),
    /// made on the generator's device and moved to the batch's device, so a seeded generator gives reproducible flips.
    /// </summary>
    public static Tensor RandomHorizontalFlip(Tensor batch, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(generator);
        if (batch.dim() != 4)
            throw new ArgumentException($"batch must be (N, C, H, W); got shape [{string.Join(", ", batch.shape)}]", nameof(batch));
        long n = batch.shape[0];
        using var scope = NewDisposeScope();
        var u = rand(new long[] { n }, dtype: ScalarType.Float32, device: generator.device, generator: generator);
        var flip = u.lt(0.5).to(batch.device).view(n, 1, 1, 1);
        var result = where(flip, batch.flip(3), batch);
        return result.MoveToOuterDisposeScope();
    }
}

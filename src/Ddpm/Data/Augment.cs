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
        using var half = 0.5.ToScalar();   // held for the call (see Ddpm.Runtime.HeldScalars); this runs every step
        var flip = u.lt(half).to(batch.device).view(n, 1, 1, 1);
        var result = where(flip, batch.flip(3), batch);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Moves each image of a batch (N, C, H, W) by its own whole-pixel offset (dy, dx), each drawn uniformly from
    /// [-<paramref name="maxShift"/>, <paramref name="maxShift"/>]; pixels moved in from outside take <paramref name="fill"/>
    /// (-1, black, by default). Returns a new tensor. The offsets are 2N integer draws from <paramref name="generator"/>
    /// (first all dy, then all dx), so a seeded generator gives reproducible shifts. maxShift 0 returns a copy.
    /// </summary>
    public static Tensor RandomShift(Tensor batch, int maxShift, Generator generator, double fill = -1.0)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(generator);
        if (batch.dim() != 4)
            throw new ArgumentException($"batch must be (N, C, H, W); got shape [{string.Join(", ", batch.shape)}]", nameof(batch));
        if (maxShift < 0 || maxShift >= Math.Min(batch.shape[2], batch.shape[3]))
            throw new ArgumentOutOfRangeException(nameof(maxShift), $"shift {maxShift} must be in [0, image size)");
        long n = batch.shape[0], h = batch.shape[2], w = batch.shape[3];
        if (maxShift == 0) return batch.clone();
        using var scope = NewDisposeScope();
        var offsets = randint(-maxShift, maxShift + 1, new long[] { 2, n }, dtype: ScalarType.Int64, device: generator.device, generator: generator)
            .cpu().data<long>().ToArray();
        var padded = nn.functional.pad(batch, new long[] { maxShift, maxShift, maxShift, maxShift }, value: fill);
        var parts = new Tensor[n];
        for (int i = 0; i < n; i++)
        {
            // Content moves by (dy, dx): the output window starts at (maxShift - dy, maxShift - dx) in the padded image.
            long dy = offsets[i], dx = offsets[n + i];
            parts[i] = padded[i].narrow(1, maxShift - dy, h).narrow(2, maxShift - dx, w);
        }
        return stack(parts).MoveToOuterDisposeScope();
    }
}

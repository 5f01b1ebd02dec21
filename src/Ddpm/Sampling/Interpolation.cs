using Ddpm.Diffusion;
using TorchSharp;
using static Ddpm.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>Interpolation between two noises, each decoded by a sampler (deterministic DDIM: Song et al. 2021, section 5.3).</summary>
public static class Interpolation
{
    /// <summary>
    /// The x_T a sampler seeded with <paramref name="seed"/> starts from for this shape: N(0, I) from a CPU generator
    /// seeded with it (float32, on the CPU).
    /// </summary>
    public static Tensor SeedNoise(long[] shape, long seed)
    {
        SamplingLoop.CheckShape(shape);
        using var generator = new Generator(unchecked((ulong)seed), CPU);
        return NoiseSource.Normal(shape, generator);
    }

    /// <summary>
    /// Spherical interpolation of two tensors taken as single vectors: with theta the angle between them,
    /// slerp(a, b, w) = sin((1 - w) theta) / sin(theta) a + sin(w theta) / sin(theta) b (Shoemake 1985), and the
    /// linear (1 - w) a + w b when theta is too small for the quotient. Keeps the norm of Gaussian noise typical,
    /// which the straight line would shrink midway. w = 0 gives a, w = 1 gives b.
    /// </summary>
    public static Tensor Slerp(Tensor a, Tensor b, double w)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (!a.shape.SequenceEqual(b.shape))
            throw new ArgumentException($"slerp: shapes [{string.Join(", ", a.shape)}] and [{string.Join(", ", b.shape)}] differ");
        using var scope = torch.NewDisposeScope();
        var a64 = a.to(ScalarType.Float64);
        var b64 = b.to(ScalarType.Float64);
        double cos = (a64.flatten() * b64.flatten()).sum().item<double>() /
                     (a64.norm().item<double>() * b64.norm().item<double>());
        double theta = Math.Acos(Math.Clamp(cos, -1.0, 1.0));
        // Scalars passed to TorchSharp are explicit and held for the whole call; see Ddpm.Runtime.HeldScalars.
        bool linear = Math.Sin(theta) < 1e-6;
        using var aCoef = (linear ? 1 - w : Math.Sin((1 - w) * theta) / Math.Sin(theta)).ToScalar();
        using var bCoef = (linear ? w : Math.Sin(w * theta) / Math.Sin(theta)).ToScalar();
        var result = (aCoef * a64).add(bCoef * b64, Int1);   // aCoef a + bCoef b
        return result.to(a.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <paramref name="frames"/> images along the spherical path from seed A's noise to seed B's (w = i / (frames - 1)),
    /// each decoded from that x_T by <paramref name="sampler"/> (deterministic DDIM in the paper; any deterministic
    /// sampler works, a stochastic one draws its step noise from seed A). <paramref name="imageShape"/> is one image's
    /// shape with batch 1 (e.g. [1, C, H, W]); the first frame equals (up to float rounding) the image a deterministic
    /// sample of that shape with seed A gives, the last the one with seed B. Returns (frames, ...) on the CPU.
    /// </summary>
    public static SampleResult Interpolate(
        GaussianDiffusion diffusion,
        nn.Module<Tensor, Tensor, Tensor> model,
        ISampler sampler,
        long[] imageShape,
        long seedA,
        long seedB,
        int frames,
        Device? device = null,
        IProgress<int>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sampler);
        SamplingLoop.CheckShape(imageShape);
        if (imageShape[0] != 1) throw new DdpmException($"interpolate: image shape [{string.Join(", ", imageShape)}] must have batch 1");
        if (frames < 2) throw DdpmException.ForSetting("frames", $"{frames}: expected at least 2");
        using var scope = torch.NewDisposeScope();
        var a = SeedNoise(imageShape, seedA);
        var b = SeedNoise(imageShape, seedB);
        var path = torch.cat(Enumerable.Range(0, frames).Select(i => Slerp(a, b, i / (double)(frames - 1))).ToList(), 0);
        var run = new SamplingRun { Start = path, Noise = NoiseSource.Seeded(seedA) };
        var result = sampler.Sample(diffusion, model, path.shape, run, device, progress, cancellationToken);
        result.Samples.MoveToOuterDisposeScope();
        foreach (var f in result.Trajectory)
        {
            f.Xt.MoveToOuterDisposeScope();
            f.PredX0.MoveToOuterDisposeScope();
        }
        return result;
    }
}

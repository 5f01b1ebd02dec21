using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>Options of <see cref="AncestralSampler.Sample"/>.</summary>
public sealed class SamplerOptions
{
    /// <summary>Seed of the sampler's own generator; the same seed gives the same samples on any device.</summary>
    public long Seed { get; set; } = 0;

    /// <summary>Clip the predicted x_0 to [-1, 1] at every step (the paper's sampler does).</summary>
    public bool ClipDenoised { get; set; } = true;

    /// <summary>
    /// 0 keeps no trajectory; k &gt; 0 keeps x_t and the predicted x_0 at every 0-based t with t % k == 0,
    /// plus the final sample (as a frame with T = -1).
    /// </summary>
    public int KeepEvery { get; set; } = 0;
}

/// <summary>
/// One kept step of a trajectory, on the CPU. For T &gt;= 0: Xt is the state fed to the model at 0-based step T
/// (the paper's x_{T+1}) and PredX0 the x_0 the model predicted from it. The final frame has T = -1: Xt is the
/// final sample (the paper's x_0) and PredX0 the prediction made at step 0.
/// </summary>
public sealed record TrajectoryFrame(int T, Tensor Xt, Tensor PredX0);

/// <summary>The samples and the optional trajectory, all on the CPU; disposing it frees every tensor.</summary>
public sealed class SampleResult : IDisposable
{
    public SampleResult(Tensor samples, IReadOnlyList<TrajectoryFrame> trajectory)
    {
        Samples = samples;
        Trajectory = trajectory;
    }

    /// <summary>The final samples x_0, float32, of the requested shape.</summary>
    public Tensor Samples { get; }

    /// <summary>Kept frames in sampling order (T descending, the final frame T = -1 last); empty when none were kept.</summary>
    public IReadOnlyList<TrajectoryFrame> Trajectory { get; }

    public void Dispose()
    {
        Samples.Dispose();
        foreach (var f in Trajectory)
        {
            f.Xt.Dispose();
            f.PredX0.Dispose();
        }
    }
}

/// <summary>The ancestral sampler of DDPM (Algorithm 2): x_T ~ N(0, I), then x_{t-1} ~ p(x_{t-1} | x_t) down to x_0.</summary>
public static class AncestralSampler
{
    /// <summary>
    /// Draws samples of the given shape (batch first) by running t = T-1 .. 0 through
    /// <see cref="GaussianDiffusion.PSample"/>. All randomness comes from a CPU generator seeded with
    /// <see cref="SamplerOptions.Seed"/> (x_T first, then one noise tensor per step) and is moved to the device,
    /// so results depend neither on the device's generator nor on the global RNG state.
    /// The model runs in eval mode under no_grad (its training flag is restored afterwards) on
    /// <paramref name="device"/>, by default the device of its first parameter (CPU for a model without any).
    /// Progress reports the number of steps done; cancellation is checked before every step.
    /// The results are on the CPU and are returned into the caller's dispose scope as well as owned by the result.
    /// </summary>
    public static SampleResult Sample(
        GaussianDiffusion diffusion,
        nn.Module<Tensor, Tensor, Tensor> model,
        long[] shape,
        SamplerOptions options,
        Device? device = null,
        IProgress<int>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(options);
        if (shape.Length < 2 || shape.Any(d => d < 1))
            throw new DdpmException($"sampler: shape [{string.Join(", ", shape)}] must have rank >= 2 (batch first) and positive sizes");
        if (options.KeepEvery < 0)
            throw new DdpmException($"sampler: KeepEvery = {options.KeepEvery} must be >= 0");

        device ??= model.parameters().Select(p => p.device).FirstOrDefault() ?? CPU;
        int steps = diffusion.Timesteps;
        int keep = options.KeepEvery;
        long n = shape[0];

        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var outer = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            using var generator = new Generator(unchecked((ulong)options.Seed), CPU);

            var frames = new List<TrajectoryFrame>();
            Tensor x = Normal(shape, generator, device);
            for (int t = steps - 1; t >= 0; t--)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Tensor next;
                using (var step = torch.NewDisposeScope())
                {
                    var tt = torch.full(new[] { n }, (long)t, dtype: ScalarType.Int64, device: device);
                    var noise = Normal(shape, generator, device);
                    var (sample, predX0) = diffusion.PSample(model, x, tt, noise, options.ClipDenoised);
                    if (keep > 0 && t % keep == 0)
                        frames.Add(new TrajectoryFrame(t, CpuCopy(x).MoveToOuterDisposeScope(), CpuCopy(predX0).MoveToOuterDisposeScope()));
                    if (keep > 0 && t == 0)
                        frames.Add(new TrajectoryFrame(-1, CpuCopy(sample).MoveToOuterDisposeScope(), CpuCopy(predX0).MoveToOuterDisposeScope()));
                    next = sample.MoveToOuterDisposeScope();
                }
                x.Dispose();
                x = next;
                progress?.Report(steps - t);
            }

            var samples = CpuCopy(x).MoveToOuterDisposeScope();
            foreach (var f in frames)
            {
                f.Xt.MoveToOuterDisposeScope();
                f.PredX0.MoveToOuterDisposeScope();
            }
            return new SampleResult(samples, frames);
        }
        finally
        {
            if (wasTraining) model.train();
        }
    }

    /// <summary>N(0, I) drawn on the CPU from the sampler's generator, then moved to the device.</summary>
    private static Tensor Normal(long[] shape, Generator generator, Device device)
    {
        var z = torch.randn(shape, dtype: ScalarType.Float32, device: CPU, generator: generator);
        return device.type == DeviceType.CPU ? z : z.to(device);
    }

    /// <summary>A CPU tensor that shares nothing with the input's lifetime.</summary>
    private static Tensor CpuCopy(Tensor x) => x.device_type == DeviceType.CPU ? x.clone() : x.cpu();
}

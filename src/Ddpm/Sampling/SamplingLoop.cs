using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>
/// The loop every sampler shares: seeded x_T, model in eval mode under no_grad, a dispose scope per step,
/// cancellation before and progress after every step, the kept trajectory, and results copied to the CPU.
/// A sampler supplies only its step.
/// </summary>
internal static class SamplingLoop
{
    /// <summary>
    /// One step from x at visit <paramref name="k"/> (0 = the noisiest of the visited timesteps). <paramref name="noise"/>
    /// draws N(0, I) of x's shape from the sampler's generator (stochastic samplers call it once per step). Returns the
    /// next state and the x_0 predicted at this step, both in the step's dispose scope.
    /// </summary>
    public delegate (Tensor Next, Tensor PredX0) Step(int k, Tensor x, Func<Tensor> noise);

    /// <summary>
    /// Runs <paramref name="visited"/>.Count steps. <paramref name="visited"/> lists the original timestep of each
    /// visit in order (descending); it only labels frames. <paramref name="start"/> is x_T (any device; copied), or
    /// null to draw it from the generator first.
    /// </summary>
    public static SampleResult Run(
        nn.Module model,
        long[] shape,
        Tensor? start,
        SamplerOptions options,
        IReadOnlyList<int> visited,
        Step step,
        Device? device,
        IProgress<int>? progress,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        CheckShape(shape);
        options.Validate();
        device ??= DefaultDevice(model);
        int steps = visited.Count;
        int keep = options.KeepEvery;

        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var outer = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            using var generator = new Generator(unchecked((ulong)options.Seed), CPU);
            Func<Tensor> noise = () => Normal(shape, generator, device);

            var frames = new List<TrajectoryFrame>();
            Tensor x = start is null ? noise() : start.to(ScalarType.Float32).to(device).clone();
            for (int k = 0; k < steps; k++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Tensor next;
                using (var scope = torch.NewDisposeScope())
                {
                    var (sample, predX0) = step(k, x, noise);
                    bool last = k == steps - 1;
                    if (keep > 0 && (steps - 1 - k) % keep == 0)
                        frames.Add(new TrajectoryFrame(visited[k], CpuCopy(x).MoveToOuterDisposeScope(), CpuCopy(predX0).MoveToOuterDisposeScope()));
                    if (keep > 0 && last)
                        frames.Add(new TrajectoryFrame(-1, CpuCopy(sample).MoveToOuterDisposeScope(), CpuCopy(predX0).MoveToOuterDisposeScope()));
                    next = sample.MoveToOuterDisposeScope();
                }
                x.Dispose();
                x = next;
                progress?.Report(k + 1);
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

    public static void CheckShape(long[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Length < 2 || shape.Any(d => d < 1))
            throw new DdpmException($"sampler: shape [{string.Join(", ", shape)}] must have rank >= 2 (batch first) and positive sizes");
    }

    /// <summary>The device of the model's first parameter, or the CPU for a model without any.</summary>
    public static Device DefaultDevice(nn.Module model) => model.parameters().Select(p => p.device).FirstOrDefault() ?? CPU;

    /// <summary>The same timestep for the whole batch, as int64 on the device.</summary>
    public static Tensor Timestep(long batch, int t, Device device) =>
        torch.full(new[] { batch }, (long)t, dtype: ScalarType.Int64, device: device);

    /// <summary>N(0, I) drawn on the CPU from the sampler's generator, then moved to the device.</summary>
    public static Tensor Normal(long[] shape, Generator generator, Device device)
    {
        var z = torch.randn(shape, dtype: ScalarType.Float32, device: CPU, generator: generator);
        return device.type == DeviceType.CPU ? z : z.to(device);
    }

    /// <summary>A CPU tensor that shares nothing with the input's lifetime.</summary>
    public static Tensor CpuCopy(Tensor x) => x.device_type == DeviceType.CPU ? x.clone() : x.cpu();
}

using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>
/// The one loop that runs any <see cref="ISampler"/>: x_T (given, or the noise source's first draw), the model in eval
/// mode under no_grad (its training flag restored afterwards) on the chosen device, a dispose scope per step,
/// cancellation before and progress (steps done) after every step, the kept trajectory, and results copied to the CPU.
/// All noise is drawn from <see cref="SamplingRun.Noise"/> (on the CPU for the seeded source, then moved to the device),
/// so results depend neither on the device's generator nor on the global RNG state.
/// </summary>
public static class SamplingLoop
{
    /// <summary>
    /// Draws samples of <paramref name="shape"/> (batch first; ignored in favour of the start's shape when
    /// <paramref name="run"/> has a start) with <paramref name="sampler"/>. <paramref name="device"/> defaults to the
    /// device of the model's first parameter (CPU for a model without any). The results are on the CPU, returned into
    /// the caller's dispose scope as well as owned by the result.
    /// </summary>
    public static SampleResult Sample(
        this ISampler sampler,
        GaussianDiffusion diffusion,
        nn.Module<Tensor, Tensor, Tensor> model,
        long[] shape,
        SamplingRun? run = null,
        Device? device = null,
        IProgress<int>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sampler);
        ArgumentNullException.ThrowIfNull(diffusion);
        ArgumentNullException.ThrowIfNull(model);
        run ??= new SamplingRun();
        if (run.KeepEvery < 0) throw new DdpmException($"sampler: keep_every {run.KeepEvery}: must be >= 0");
        ArgumentNullException.ThrowIfNull(run.Noise);
        if (run.Start is not null) shape = run.Start.shape;
        CheckShape(shape);
        var visited = sampler.Timesteps(diffusion.Schedule);
        device ??= DefaultDevice(model);
        int steps = visited.Length;
        int keep = run.KeepEvery;

        bool wasTraining = model.training;
        model.eval();
        var noiseSource = run.Noise.ForRun();
        try
        {
            using var outer = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            using var stepper = sampler.Begin(diffusion, model, visited);
            Func<Tensor> noise = () => ToDevice(noiseSource.Next(shape), device);

            var frames = new List<TrajectoryFrame>();
            Tensor x = run.Start is null ? noise() : run.Start.to(ScalarType.Float32).to(device).clone();
            for (int k = 0; k < steps; k++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Tensor next;
                using (var scope = torch.NewDisposeScope())
                {
                    var (sample, predX0) = stepper.Step(k, x, noise);
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
            noiseSource.EndRun();
            if (wasTraining) model.train();
        }
    }

    internal static void CheckShape(long[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Length < 2 || shape.Any(d => d < 1))
            throw new DdpmException($"sampler: shape [{string.Join(", ", shape)}] must have rank >= 2 (batch first) and positive sizes");
    }

    /// <summary>The device of the model's first parameter, or the CPU for a model without any.</summary>
    public static Device DefaultDevice(nn.Module model) => model.parameters().Select(p => p.device).FirstOrDefault() ?? CPU;

    /// <summary>The same timestep for the whole batch, as int64 on the device.</summary>
    internal static Tensor Timestep(long batch, int t, Device device)
    {
        using var value = ((long)t).ToScalar();   // held for the call: see Ddpm.Runtime.HeldScalars
        return torch.full(new[] { batch }, value, dtype: ScalarType.Int64, device: device);
    }

    private static Tensor ToDevice(Tensor z, Device device) =>
        z.device_type == device.type && (device.type == DeviceType.CPU || z.device_index == device.index) ? z : z.to(device);

    /// <summary>A CPU tensor that shares nothing with the input's lifetime.</summary>
    internal static Tensor CpuCopy(Tensor x) => x.device_type == DeviceType.CPU ? x.clone() : x.cpu();
}

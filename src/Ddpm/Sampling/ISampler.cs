using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>
/// A sampler: its name, its options, the timesteps it visits and how it steps. <see cref="SamplingLoop"/> runs any
/// sampler (noise, x_T, progress, cancellation, device); a sampler supplies only what differs. Register a new one with
/// <see cref="SamplerRegistry.Register"/> to make it available by name to the CLI and the training-time grids.
/// </summary>
public interface ISampler
{
    /// <summary>The registry name, e.g. "ddim".</summary>
    string Name { get; }

    /// <summary>The sampler's options (its own record type, derived from <see cref="SamplerOptions"/>).</summary>
    SamplerOptions Options { get; }

    /// <summary>
    /// The same sampler with other options (of this sampler's options type; <c>sampler.Options with { ... }</c> keeps the
    /// type). Throws a <see cref="DdpmException"/> for options of another sampler.
    /// </summary>
    ISampler With(SamplerOptions options);

    /// <summary>
    /// The original 0-based timesteps at which the model is evaluated, in visiting order (descending); checks the
    /// options against the schedule (one-line <see cref="DdpmException"/> naming the setting).
    /// </summary>
    int[] Timesteps(NoiseSchedule schedule);

    /// <summary>A one-line description, e.g. "ddim, 50 of 1000 steps (even), eta 0, threshold clip".</summary>
    string Describe(NoiseSchedule schedule);

    /// <summary>
    /// Starts one run over <paramref name="visited"/> (from <see cref="Timesteps"/>): the returned object takes the steps
    /// in order and is disposed when the run ends. The model is in eval mode under no_grad by then.
    /// </summary>
    ISamplerRun Begin(GaussianDiffusion diffusion, nn.Module<Tensor, Tensor, Tensor> model, int[] visited);
}

/// <summary>A sampler with its own options type.</summary>
public interface ISampler<out TOptions> : ISampler where TOptions : SamplerOptions
{
    /// <summary>The sampler's options.</summary>
    new TOptions Options { get; }
}

/// <summary>One run of a sampler: the steps in order, with whatever state a multistep method keeps between them.</summary>
public interface ISamplerRun : IDisposable
{
    /// <summary>
    /// The step at visit <paramref name="k"/> (0 = the noisiest visited timestep) from state <paramref name="x"/>.
    /// <paramref name="noise"/> draws N(0, I) of x's shape from the run's noise source (stochastic samplers call it once
    /// per step, deterministic ones never). Returns the next state and the x_0 predicted at this step, both in the
    /// caller's dispose scope.
    /// </summary>
    SamplerStep Step(int k, Tensor x, Func<Tensor> noise);
}

/// <summary>The state after one step and the x_0 the model predicted at it (after thresholding).</summary>
public readonly record struct SamplerStep(Tensor Next, Tensor PredX0);

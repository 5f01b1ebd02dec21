using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>
/// The ancestral sampler of DDPM (Algorithm 2): x_T ~ N(0, I), then x_{t-1} ~ p(x_{t-1} | x_t) down to x_0, over all
/// T steps or over a respaced subset of them (improved DDPM, section 4).
/// </summary>
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
        ArgumentNullException.ThrowIfNull(options);
        var visited = Enumerable.Range(0, diffusion.Timesteps).Reverse().ToArray();
        return SamplingLoop.Run(model, shape, null, options, visited,
            (k, x, noise) => PStep(diffusion, model, x, visited[k], noise(), options),
            device, progress, cancellationToken);
    }

    /// <summary>
    /// The ancestral sampler over a subset of the timesteps (any order; each in [0, T-1] once): the diffusion is
    /// respaced to them (<see cref="RespacedDiffusion"/>, betas recomputed for the subset), the model receives the
    /// original timesteps, and the last step goes to alpha_bar_prev = 1. With every timestep kept the samples equal
    /// those of the full sampler. Trajectory frames carry the original timesteps; everything else is as in the full
    /// sampler.
    /// </summary>
    public static SampleResult Sample(
        GaussianDiffusion diffusion,
        nn.Module<Tensor, Tensor, Tensor> model,
        long[] shape,
        IEnumerable<int> timesteps,
        SamplerOptions options,
        Device? device = null,
        IProgress<int>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        using var respaced = RespacedDiffusion.Create(diffusion, timesteps);
        using var mapped = respaced.WrapModel(model);
        int count = respaced.Timesteps.Count;
        var visited = respaced.Timesteps.Reverse().ToArray();
        return SamplingLoop.Run(model, shape, null, options, visited,
            (k, x, noise) => PStep(respaced.Diffusion, mapped, x, count - 1 - k, noise(), options),
            device, progress, cancellationToken);
    }

    /// <summary>
    /// x_{t-1} = mu_theta(x_t, t) + [t != 0] sigma_t z (Algorithm 2) with the predicted x_0 clipped, dynamically
    /// thresholded or left alone; mu_theta is the posterior mean given that x_0 (eqs. 7, 11).
    /// </summary>
    private static (Tensor Next, Tensor PredX0) PStep(
        GaussianDiffusion diffusion, nn.Module<Tensor, Tensor, Tensor> model, Tensor x, int t, Tensor noise, SamplerOptions options)
    {
        var tt = SamplingLoop.Timestep(x.shape[0], t, x.device);
        if (options.Threshold != X0Threshold.Dynamic)
            return diffusion.PSample(model, x, tt, noise, options.Threshold == X0Threshold.Clip);

        var (_, _, logVariance, predX0) = diffusion.PMeanVariance(model, x, tt, clipDenoised: false);
        var x0 = Thresholding.Apply(predX0, options);
        var (mean, _, _) = diffusion.PosteriorMeanVariance(x0, x, tt);
        var next = t == 0 ? mean : mean + (0.5 * logVariance).exp() * noise;
        return (next, x0);
    }
}

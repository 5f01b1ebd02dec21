using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>The ancestral sampler's options: the shared ones (all T steps, evenly spaced when fewer, x_0 clipped by default).</summary>
public sealed record AncestralOptions : SamplerOptions;

/// <summary>
/// The ancestral sampler of DDPM (Algorithm 2): x_T ~ N(0, I), then x_{t-1} ~ p(x_{t-1} | x_t) down to x_0
/// (<see cref="GaussianDiffusion.PSample(nn.Module{Tensor, Tensor, Tensor}, Tensor, Tensor, Tensor, Func{Tensor, Tensor}?)"/>),
/// over all T steps or over a subset of them. A subset respaces the diffusion to it (<see cref="RespacedDiffusion"/>,
/// betas recomputed for the subset; improved DDPM, section 4); the model receives the original timesteps and the last
/// step goes to alpha_bar_prev = 1. With every timestep kept the samples equal those of the full sampler. One noise
/// draw per step (the last step's is drawn and unused, as in Algorithm 2's loop).
/// </summary>
public sealed class AncestralSampler(AncestralOptions? options = null) : ISampler<AncestralOptions>
{
    /// <summary>The registry name.</summary>
    public const string RegistryName = "ddpm";

    public string Name => RegistryName;
    public AncestralOptions Options { get; } = options ?? new AncestralOptions();
    SamplerOptions ISampler.Options => Options;

    public ISampler With(SamplerOptions options) =>
        new AncestralSampler(options as AncestralOptions ?? throw SamplerRegistry.WrongOptions(Name, options));

    /// <summary>All T timesteps by default (the paper's sampler); fewer are evenly spaced unless told otherwise.</summary>
    public int[] Timesteps(NoiseSchedule schedule) => Options.ResolveTimesteps(schedule, schedule.Timesteps, TimestepSpacing.Even);

    public string Describe(NoiseSchedule schedule) =>
        $"{Name}, {Options.DescribeCommon(schedule, Timesteps(schedule).Length, TimestepSpacing.Even)}";

    public ISamplerRun Begin(GaussianDiffusion diffusion, nn.Module<Tensor, Tensor, Tensor> model, int[] visited)
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        ArgumentNullException.ThrowIfNull(model);
        return visited.Length == diffusion.Timesteps
            ? new Run(diffusion, model, null, Options)
            : new Run(diffusion, model, RespacedDiffusion.Create(diffusion, visited), Options);
    }

    private sealed class Run : ISamplerRun
    {
        private readonly GaussianDiffusion _diffusion;
        private readonly nn.Module<Tensor, Tensor, Tensor> _model;
        private readonly RespacedDiffusion? _respaced;
        private readonly Func<Tensor, Tensor>? _threshold;

        public Run(GaussianDiffusion diffusion, nn.Module<Tensor, Tensor, Tensor> model, RespacedDiffusion? respaced, SamplerOptions options)
        {
            _respaced = respaced;
            _diffusion = respaced?.Diffusion ?? diffusion;
            _model = respaced is null ? model : respaced.WrapModel(model);
            _threshold = options.Threshold == X0Threshold.None ? null : x0 => Thresholding.Apply(x0, options);
        }

        /// <summary>Visit k is index T' - 1 - k of the (possibly respaced) diffusion.</summary>
        public SamplerStep Step(int k, Tensor x, Func<Tensor> noise)
        {
            var tt = SamplingLoop.Timestep(x.shape[0], _diffusion.Timesteps - 1 - k, x.device);
            var (next, predX0) = _diffusion.PSample(_model, x, tt, noise(), _threshold);
            return new SamplerStep(next, predX0);
        }

        public void Dispose()
        {
            if (_respaced is null) return;
            _model.Dispose();
            _respaced.Dispose();
        }
    }
}

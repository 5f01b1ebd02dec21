using Ddpm.Diffusion;
using Ddpm.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Sampling;

/// <summary>A run's seed and trajectory with the shared sampler options, for tests that call one sampler directly.</summary>
internal sealed record SampleOptions
{
    public long Seed { get; init; }
    public int KeepEvery { get; init; }
    public X0Threshold Threshold { get; init; } = X0Threshold.Clip;
    public double DynamicThresholdMax { get; init; } = double.PositiveInfinity;

    public bool ClipDenoised
    {
        get => Threshold == X0Threshold.Clip;
        init => Threshold = value ? X0Threshold.Clip : X0Threshold.None;
    }

    public SamplingRun Run(Tensor? start = null) => new() { Noise = NoiseSource.Seeded(Seed), KeepEvery = KeepEvery, Start = start };

    public T Apply<T>(T options) where T : SamplerOptions =>
        options with { Threshold = Threshold, DynamicThresholdMax = DynamicThresholdMax };
}

/// <summary>Each built-in sampler through the shared loop, with its timesteps given as a list.</summary>
internal static class TestSampling
{
    public static SampleResult Ancestral(GaussianDiffusion d, nn.Module<Tensor, Tensor, Tensor> model, long[] shape, SampleOptions o,
        Device? device = null, IProgress<int>? progress = null, CancellationToken cancellationToken = default) =>
        new AncestralSampler(o.Apply(new AncestralOptions())).Sample(d, model, shape, o.Run(), device, progress, cancellationToken);

    public static SampleResult Ancestral(GaussianDiffusion d, nn.Module<Tensor, Tensor, Tensor> model, long[] shape, IEnumerable<int> timesteps,
        SampleOptions o, Device? device = null, IProgress<int>? progress = null, CancellationToken cancellationToken = default) =>
        new AncestralSampler(o.Apply(new AncestralOptions { Timesteps = timesteps.ToArray() }))
            .Sample(d, model, shape, o.Run(), device, progress, cancellationToken);

    public static SampleResult Ddim(GaussianDiffusion d, nn.Module<Tensor, Tensor, Tensor> model, long[] shape, IEnumerable<int> timesteps,
        double eta, SampleOptions o, Device? device = null, IProgress<int>? progress = null, CancellationToken cancellationToken = default) =>
        new DdimSampler(o.Apply(new DdimOptions { Timesteps = timesteps.ToArray(), Eta = eta }))
            .Sample(d, model, shape, o.Run(), device, progress, cancellationToken);

    public static SampleResult Decode(GaussianDiffusion d, nn.Module<Tensor, Tensor, Tensor> model, Tensor xT, IEnumerable<int> timesteps,
        double eta, SampleOptions o, Device? device = null, IProgress<int>? progress = null, CancellationToken cancellationToken = default) =>
        new DdimSampler(o.Apply(new DdimOptions { Timesteps = timesteps.ToArray(), Eta = eta }))
            .Sample(d, model, xT.shape, o.Run(xT), device, progress, cancellationToken);

    public static SampleResult Dpm(GaussianDiffusion d, nn.Module<Tensor, Tensor, Tensor> model, long[] shape, IEnumerable<int> timesteps,
        SampleOptions o, Device? device = null, IProgress<int>? progress = null, CancellationToken cancellationToken = default) =>
        new DpmSolverSampler(o.Apply(new DpmSolverOptions { Timesteps = timesteps.ToArray() }))
            .Sample(d, model, shape, o.Run(), device, progress, cancellationToken);
}

using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>What a model's output means.</summary>
internal enum ModelOutput
{
    /// <summary>The noise eps (Ho et al. 2020).</summary>
    Epsilon,
    /// <summary>The clean sample x_0.</summary>
    Start,
    /// <summary>The velocity v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0 (Salimans and Ho 2022).</summary>
    Velocity,
}

/// <summary>
/// The one place where a sampler turns a model output into (eps, x_0). The samplers' update rules are written in
/// terms of that pair, so they work for every <see cref="ModelOutput"/>.
/// </summary>
internal static class ModelPrediction
{
    /// <summary>
    /// Runs the model on x_t at original timestep t (the same for the whole batch) and returns (eps, x_0): x_0 after
    /// <see cref="SamplerOptions.Threshold"/>, and eps re-derived from that x_0 whenever a threshold is applied, so the
    /// pair always satisfies x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps.
    /// </summary>
    public static (Tensor Eps, Tensor X0) EpsAndStart(
        GaussianDiffusion diffusion, nn.Module<Tensor, Tensor, Tensor> model, Tensor xt, int t, SamplerOptions options)
    {
        using var scope = torch.NewDisposeScope();
        var tt = SamplingLoop.Timestep(xt.shape[0], t, xt.device);
        var output = model.call(xt, tt);
        if (!output.shape.SequenceEqual(xt.shape))
            throw new DdpmException($"sampler: the model output has shape [{string.Join(", ", output.shape)}], expected [{string.Join(", ", xt.shape)}]");
        double alphaBar = diffusion.Schedule.AlphasCumprod[t];
        var (eps, x0) = options.Prediction switch
        {
            ModelOutput.Epsilon => (output, diffusion.PredictStartFromNoise(xt, tt, output)),
            ModelOutput.Start => (NoiseFromStart(xt, output, alphaBar), output),
            ModelOutput.Velocity => (NoiseFromVelocity(xt, output, alphaBar), StartFromVelocity(xt, output, alphaBar)),
            _ => throw new DdpmException($"sampler: model output {options.Prediction}: expected Epsilon, Start or Velocity"),
        };
        if (options.Threshold != X0Threshold.None)
        {
            x0 = Thresholding.Apply(x0, options);
            eps = NoiseFromStart(xt, x0, alphaBar);
        }
        return (eps.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
    }

    /// <summary>eps = (x_t - sqrt(alpha_bar) x_0) / sqrt(1 - alpha_bar). (DDPM eq. 4 solved for eps)</summary>
    public static Tensor NoiseFromStart(Tensor xt, Tensor x0, double alphaBar) =>
        (xt - Math.Sqrt(alphaBar) * x0) / Math.Sqrt(1.0 - alphaBar);

    /// <summary>x_0 = sqrt(alpha_bar) x_t - sqrt(1 - alpha_bar) v. (Salimans and Ho 2022, section 4)</summary>
    public static Tensor StartFromVelocity(Tensor xt, Tensor v, double alphaBar) =>
        Math.Sqrt(alphaBar) * xt - Math.Sqrt(1.0 - alphaBar) * v;

    /// <summary>eps = sqrt(1 - alpha_bar) x_t + sqrt(alpha_bar) v. (Salimans and Ho 2022, section 4)</summary>
    public static Tensor NoiseFromVelocity(Tensor xt, Tensor v, double alphaBar) =>
        Math.Sqrt(1.0 - alphaBar) * xt + Math.Sqrt(alphaBar) * v;
}

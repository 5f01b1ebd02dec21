using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>
/// The one place where a sampler turns a model output into (eps, x_0). The samplers' update rules are written in
/// terms of that pair, so they work for every <see cref="PredictionType"/> the diffusion knows (eps, x_0, v, mu), with
/// or without learned variance channels.
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
        double alphaBar = diffusion.Schedule.AlphasCumprod[t];
        var (eps, x0) = diffusion.PredictEpsAndStart(output, xt, tt, clipDenoised: false);
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
}

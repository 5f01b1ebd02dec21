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
    /// <see cref="SamplerOptions.Threshold"/>; eps is the diffusion's conversion of the model output
    /// (<see cref="GaussianDiffusion.PredictEpsAndX0(Tensor, Tensor, Tensor, bool)"/>), re-derived from the thresholded
    /// x_0 when a threshold applies and <paramref name="epsFromThresholdedX0"/> (so that the pair satisfies
    /// x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps), or kept as the model gave it otherwise.
    /// </summary>
    public static (Tensor Eps, Tensor X0) EpsAndX0(
        GaussianDiffusion diffusion, nn.Module<Tensor, Tensor, Tensor> model, Tensor xt, int t, SamplerOptions options,
        bool epsFromThresholdedX0 = true)
    {
        using var scope = torch.NewDisposeScope();
        var tt = SamplingLoop.Timestep(xt.shape[0], t, xt.device);
        var output = model.call(xt, tt);
        var (eps, x0) = diffusion.PredictEpsAndX0(output, xt, tt, clipDenoised: false);
        if (options.Threshold != X0Threshold.None)
        {
            x0 = Thresholding.Apply(x0, options);
            if (epsFromThresholdedX0) eps = diffusion.PredictEpsFromX0(xt, tt, x0);
        }
        return (eps.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
    }
}

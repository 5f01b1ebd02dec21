using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>
/// DDIM (Song et al. 2021) over a subset tau_1 &lt; ... &lt; tau_K of the original timesteps, with eta from 0
/// (deterministic) to 1 (the ancestral sampler's posterior variance). The step from tau_i goes to tau_{i-1}, and the
/// last one to alpha_bar_prev = 1. Also encodes an image into its noise (DDIM inversion) and decodes it back.
/// Coefficients are computed in float64 from the original schedule's alpha_bar.
/// </summary>
public static class DdimSampler
{
    /// <summary>
    /// Draws samples from x_T ~ N(0, I) (seeded as in <see cref="AncestralSampler"/>; for eta &gt; 0 one noise tensor
    /// per step follows). <paramref name="timesteps"/> in any order; each in [0, T-1] once.
    /// </summary>
    public static SampleResult Sample(
        GaussianDiffusion diffusion,
        nn.Module<Tensor, Tensor, Tensor> model,
        long[] shape,
        IEnumerable<int> timesteps,
        double eta,
        SamplerOptions options,
        Device? device = null,
        IProgress<int>? progress = null,
        CancellationToken cancellationToken = default) =>
        Run(diffusion, model, shape, null, timesteps, eta, options, device, progress, cancellationToken);

    /// <summary>
    /// Decodes a given x_T (e.g. from <see cref="Encode"/> or an interpolation of noises) down to x_0. With eta = 0
    /// the result is a deterministic function of x_T; with eta &gt; 0 the step noise comes from the seeded generator.
    /// </summary>
    public static SampleResult Decode(
        GaussianDiffusion diffusion,
        nn.Module<Tensor, Tensor, Tensor> model,
        Tensor xT,
        IEnumerable<int> timesteps,
        double eta,
        SamplerOptions options,
        Device? device = null,
        IProgress<int>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(xT);
        return Run(diffusion, model, xT.shape, xT, timesteps, eta, options, device, progress, cancellationToken);
    }

    /// <summary>
    /// DDIM inversion: runs the deterministic (eta = 0) update forwards, x_{tau_i} -> x_{tau_{i+1}} with
    /// x_{tau_{i+1}} = sqrt(alpha_bar_{tau_{i+1}}) x0_hat + sqrt(1 - alpha_bar_{tau_{i+1}}) eps_theta(x_{tau_i}, tau_i),
    /// starting from the image as the state at alpha_bar = 1 (whose first step uses eps_theta(x_0, tau_1)). No
    /// thresholding, so that decoding with eta = 0 and no thresholding retraces the path. Returns x_T at the largest
    /// kept timestep, on the CPU, in the caller's dispose scope.
    /// </summary>
    public static Tensor Encode(
        GaussianDiffusion diffusion,
        nn.Module<Tensor, Tensor, Tensor> model,
        Tensor x0,
        IEnumerable<int> timesteps,
        Device? device = null,
        IProgress<int>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        ArgumentNullException.ThrowIfNull(x0);
        var kept = TimestepSelection.FromList(timesteps, diffusion.Timesteps);
        var options = new SamplerOptions { Threshold = X0Threshold.None };
        var s = diffusion.Schedule;
        // Visit k evaluates the model at tau_{k-1} (tau_1 for the clean start) and lands at tau_k.
        var visited = kept.Select((t, k) => k == 0 ? t : kept[k - 1]).ToArray();
        using var result = SamplingLoop.Run(model, x0.shape, x0, options, visited, (k, x, _) =>
        {
            var (eps, predX0) = ModelPrediction.EpsAndStart(diffusion, model, x, visited[k], options);
            var start = k == 0 ? x.alias() : predX0;
            return (Step(start, eps, s.AlphasCumprod[kept[k]], 0.0, null), start);
        }, device, progress, cancellationToken);
        return result.Samples.detach().clone();
    }

    private static SampleResult Run(
        GaussianDiffusion diffusion, nn.Module<Tensor, Tensor, Tensor> model, long[] shape, Tensor? start,
        IEnumerable<int> timesteps, double eta, SamplerOptions options, Device? device, IProgress<int>? progress,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        ArgumentNullException.ThrowIfNull(options);
        CheckEta(eta);
        var visited = TimestepSelection.FromList(timesteps, diffusion.Timesteps).Reverse().ToArray();
        var s = diffusion.Schedule;
        return SamplingLoop.Run(model, shape, start, options, visited, (k, x, noise) =>
        {
            int t = visited[k];
            double alphaBar = s.AlphasCumprod[t];
            double alphaBarPrev = k + 1 < visited.Length ? s.AlphasCumprod[visited[k + 1]] : 1.0;
            double sigma = Sigma(alphaBar, alphaBarPrev, eta);
            var z = eta > 0 ? noise() : null;
            var (eps, x0) = ModelPrediction.EpsAndStart(diffusion, model, x, t, options);
            return (Step(x0, eps, alphaBarPrev, sigma, z), x0);
        }, device, progress, cancellationToken);
    }

    /// <summary>eta in [0, 1]; larger values would need sqrt(1 - alpha_bar_prev - sigma^2) of a negative number.</summary>
    public static void CheckEta(double eta)
    {
        if (!(eta >= 0.0 && eta <= 1.0))
            throw DdpmException.ForSetting("eta", $"{eta.ToString(System.Globalization.CultureInfo.InvariantCulture)}: expected a value in [0, 1] (0 = deterministic DDIM, 1 = DDPM's variance)");
    }

    /// <summary>
    /// sigma = eta sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_prev).
    /// (DDIM eq. 16; with eta = 1, sigma^2 is DDPM's posterior variance beta~_t)
    /// </summary>
    public static double Sigma(double alphaBar, double alphaBarPrev, double eta) =>
        eta * Math.Sqrt((1.0 - alphaBarPrev) / (1.0 - alphaBar)) * Math.Sqrt(1.0 - alphaBar / alphaBarPrev);

    /// <summary>
    /// x_prev = sqrt(alpha_bar_prev) x_0 + sqrt(1 - alpha_bar_prev - sigma^2) eps + sigma z. (DDIM eq. 12)
    /// </summary>
    internal static Tensor Step(Tensor x0, Tensor eps, double alphaBarPrev, double sigma, Tensor? z)
    {
        double direction = Math.Sqrt(Math.Max(0.0, 1.0 - alphaBarPrev - sigma * sigma));
        var next = Math.Sqrt(alphaBarPrev) * x0 + direction * eps;
        return z is null || sigma == 0.0 ? next : next + sigma * z;
    }
}

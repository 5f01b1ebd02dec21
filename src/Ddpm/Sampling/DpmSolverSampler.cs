using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>
/// DPM-Solver++(2M) (Lu et al. 2022, arXiv 2211.01095, Algorithm 2): the multistep second-order solver of the
/// diffusion ODE in its data-prediction form, written in terms of the predicted x_0, so it serves eps-, x_0- and
/// v-models alike. With alpha_t = sqrt(alpha_bar_t), sigma_t = sqrt(1 - alpha_bar_t) and the half log-SNR
/// lambda_t = log(alpha_t / sigma_t), each step from s to t (h = lambda_t - lambda_s) is
/// x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) D, where D is x0_s for the first-order step (the first
/// step, which has no history, = DDIM with eta = 0) and x0_s + (x0_s - x0_prev) / (2 r) with r = h_prev / h
/// afterwards. Time steps: the kept timesteps tau_K &gt; ... &gt; tau_1 of the discrete schedule (through
/// <see cref="Sampler"/> by default evenly spaced in lambda, <see cref="TimestepSelection.LogSnrSpaced"/>); the model
/// runs once at each. Two steps take the first order: the first (no history yet) and the step into tau_1
/// ("lower_order_final" of the DPM-Solver code, here at any step count: a grid that ends at t = 0 has its widest
/// lambda interval last, where r = h_prev / h is small and the second-order extrapolation 1/(2r) (x0_s - x0_prev)
/// is least reliable; measured on the 2-D toy, keeping the second order there ruins time-uniform grids). The final
/// step goes from tau_1 to alpha_bar = 1 (sigma = 0), where the update is x = x0_{tau_1} (diffusers'
/// final_sigmas_type "zero"). Deterministic given x_T.
/// </summary>
public static class DpmSolverSampler
{
    /// <summary>
    /// Draws samples from x_T ~ N(0, I) (seeded as in <see cref="AncestralSampler"/>; no other randomness).
    /// <paramref name="timesteps"/> in any order; each in [0, T-1] once.
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
        ArgumentNullException.ThrowIfNull(options);
        var visited = TimestepSelection.FromList(timesteps, diffusion.Timesteps).Reverse().ToArray();
        var s = diffusion.Schedule;
        Tensor? previousX0 = null;
        double previousH = 0;
        try
        {
            return SamplingLoop.Run(model, shape, null, options, visited, (k, x, _) =>
            {
                int t = visited[k];
                var (_, x0) = ModelPrediction.EpsAndStart(diffusion, model, x, t, options);
                Tensor next;
                double h = 0;
                if (k + 1 == visited.Length)
                    next = x0.alias(); // to sigma = 0: x = x0 (first order)
                else
                {
                    double aS = s.AlphasCumprod[t], aT = s.AlphasCumprod[visited[k + 1]];
                    h = Lambda(aT) - Lambda(aS);
                    next = previousX0 is null || k + 2 == visited.Length
                        ? FirstOrderUpdate(x, x0, aS, aT)
                        : SecondOrderUpdate(x, x0, previousX0, aS, aT, previousH / h);
                }
                previousX0?.Dispose();
                previousX0 = x0.detach().clone().DetachFromDisposeScope();
                previousH = h;
                return (next, x0);
            }, device, progress, cancellationToken);
        }
        finally
        {
            previousX0?.Dispose();
        }
    }

    /// <summary>lambda = log(alpha / sigma), the half log-SNR (<see cref="TimestepSelection.HalfLogSnr"/>).</summary>
    public static double Lambda(double alphaBar) => TimestepSelection.HalfLogSnr(alphaBar);

    /// <summary>
    /// DPM-Solver++(1): x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) x0_s. (DPM-Solver++, eq. 8 with k = 1)
    /// </summary>
    internal static Tensor FirstOrderUpdate(Tensor xS, Tensor x0S, double alphaBarS, double alphaBarT) =>
        Update(xS, x0S, alphaBarS, alphaBarT);

    /// <summary>
    /// DPM-Solver++(2M): D = (1 + 1/(2r)) x0_s - 1/(2r) x0_prev with r = h_prev / h, then the first-order form with D in
    /// place of x0_s. (DPM-Solver++, Algorithm 2)
    /// </summary>
    internal static Tensor SecondOrderUpdate(Tensor xS, Tensor x0S, Tensor x0Prev, double alphaBarS, double alphaBarT, double r)
    {
        using var scope = torch.NewDisposeScope();
        double c = 1.0 / (2.0 * r);
        var d = (1.0 + c) * x0S - c * x0Prev;
        return Update(xS, d, alphaBarS, alphaBarT).MoveToOuterDisposeScope();
    }

    private static Tensor Update(Tensor xS, Tensor d, double alphaBarS, double alphaBarT)
    {
        double h = Lambda(alphaBarT) - Lambda(alphaBarS);
        double sigmaRatio = Math.Sqrt((1.0 - alphaBarT) / (1.0 - alphaBarS));
        double alphaT = Math.Sqrt(alphaBarT);
        return sigmaRatio * xS - alphaT * (Math.Exp(-h) - 1.0) * d;
    }
}

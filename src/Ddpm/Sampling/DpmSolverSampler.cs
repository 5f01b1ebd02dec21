using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>Where DPM-Solver++'s last step lands.</summary>
public enum DpmFinalStep
{
    /// <summary>sigma = 0 (alpha_bar = 1), where the update is x = x0 (diffusers' final_sigmas_type "zero").</summary>
    Zero,
    /// <summary>The schedule's smallest sigma, at t = 0 (diffusers' final_sigmas_type "sigma_min").</summary>
    SigmaMin,
}

/// <summary>DPM-Solver++'s options: the shared ones plus the final step and whether the last steps drop to first order.</summary>
public sealed record DpmSolverOptions : SamplerOptions
{
    /// <summary>Where the last step lands; <see cref="DpmFinalStep.Zero"/> by default.</summary>
    public DpmFinalStep FinalStep { get; init; } = DpmFinalStep.Zero;

    /// <summary>
    /// True (the default): the step into the last visited timestep, and a final step to sigma_min, take the first order
    /// ("lower_order_final"). A final step to sigma = 0 is always first order (its h is infinite).
    /// </summary>
    public bool LowerOrderFinal { get; init; } = true;

    public override void Validate()
    {
        base.Validate();
        if (!Enum.IsDefined(FinalStep)) throw new DdpmException($"dpm-solver: final_step {FinalStep}: expected Zero or SigmaMin");
    }
}

/// <summary>
/// DPM-Solver++(2M) (Lu et al. 2022, arXiv 2211.01095, Algorithm 2): the multistep second-order solver of the
/// diffusion ODE in its data-prediction form, written in terms of the predicted x_0, so it serves eps-, x_0- and
/// v-models alike. With alpha_t = sqrt(alpha_bar_t), sigma_t = sqrt(1 - alpha_bar_t) and the half log-SNR
/// lambda_t = log(alpha_t / sigma_t), each step from s to t (h = lambda_t - lambda_s) is
/// x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) D, where D is x0_s for the first-order step (the first
/// step, which has no history, = DDIM with eta = 0) and x0_s + (x0_s - x0_prev) / (2 r) with r = h_prev / h
/// afterwards. Time steps: the visited timesteps tau_K &gt; ... &gt; tau_1 of the discrete schedule (20 by default, evenly
/// spaced in lambda, <see cref="TimestepSelection.LogSnrSpaced"/>); the model runs once at each. By default two steps
/// take the first order: the first (no history yet) and the step into tau_1 (<see cref="DpmSolverOptions.LowerOrderFinal"/>:
/// a grid that ends at t = 0 has its widest lambda interval last, where r = h_prev / h is small and the second-order
/// extrapolation 1/(2r) (x0_s - x0_prev) is least reliable; measured on the 2-D toy, keeping the second order there ruins
/// time-uniform grids). The final step goes from tau_1 to <see cref="DpmSolverOptions.FinalStep"/>. Deterministic given x_T.
/// </summary>
public sealed class DpmSolverSampler(DpmSolverOptions? options = null) : ISampler<DpmSolverOptions>
{
    /// <summary>The registry name.</summary>
    public const string RegistryName = "dpm-solver";

    /// <summary>The steps when none are asked for (at most T).</summary>
    public const int DefaultSteps = 20;

    public string Name => RegistryName;
    public DpmSolverOptions Options { get; } = options ?? new DpmSolverOptions();
    SamplerOptions ISampler.Options => Options;

    public ISampler With(SamplerOptions options) =>
        new DpmSolverSampler(options as DpmSolverOptions ?? throw SamplerRegistry.WrongOptions(Name, options));

    /// <summary>diffusers' linspace and leading take their DPM-Solver variants here (the last step lands below the grid).</summary>
    public int[] Timesteps(NoiseSchedule schedule) =>
        Options.ResolveTimesteps(schedule, DefaultSteps, TimestepSpacing.LogSnr, endsAtSigmaZero: true);

    public string Describe(NoiseSchedule schedule)
    {
        var final = Options.FinalStep == DpmFinalStep.Zero ? "" : ", final sigma_min";
        var order = Options.LowerOrderFinal ? "" : ", second order to the end";
        return $"{Name}, {Options.DescribeCommon(schedule, Timesteps(schedule).Length, TimestepSpacing.LogSnr)}{final}{order}";
    }

    public ISamplerRun Begin(GaussianDiffusion diffusion, nn.Module<Tensor, Tensor, Tensor> model, int[] visited)
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        ArgumentNullException.ThrowIfNull(model);
        Options.Validate();
        return new Run(diffusion, model, visited, Options);
    }

    private sealed class Run(GaussianDiffusion diffusion, nn.Module<Tensor, Tensor, Tensor> model, int[] visited, DpmSolverOptions options) : ISamplerRun
    {
        private Tensor? _previousX0;
        private double _previousH;

        public SamplerStep Step(int k, Tensor x, Func<Tensor> noise)
        {
            var s = diffusion.Schedule;
            int t = visited[k];
            var (_, x0) = ModelPrediction.EpsAndX0(diffusion, model, x, t, options);
            bool last = k + 1 == visited.Length;
            Tensor next;
            double h = 0;
            if (last && options.FinalStep == DpmFinalStep.Zero)
                next = x0.alias(); // to sigma = 0: x = x0 (first order)
            else
            {
                double aS = s.AlphasCumprod[t], aT = last ? s.AlphasCumprod[0] : s.AlphasCumprod[visited[k + 1]];
                h = Lambda(aT) - Lambda(aS);
                bool firstOrder = _previousX0 is null || h == 0 || (options.LowerOrderFinal && (last || k + 2 == visited.Length));
                next = firstOrder
                    ? FirstOrderUpdate(x, x0, aS, aT)
                    : SecondOrderUpdate(x, x0, _previousX0!, aS, aT, _previousH / h);
            }
            _previousX0?.Dispose();
            _previousX0 = x0.detach().clone().DetachFromDisposeScope();
            _previousH = h;
            return new SamplerStep(next, x0);
        }

        public void Dispose() => _previousX0?.Dispose();
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
        // Scalars passed to TorchSharp are explicit and held for the whole call; see Ddpm.Runtime.HeldScalars.
        using var x0Coef = (1.0 + c).ToScalar();
        using var prevCoef = c.ToScalar();
        var d = x0Coef * x0S - prevCoef * x0Prev;
        return Update(xS, d, alphaBarS, alphaBarT).MoveToOuterDisposeScope();
    }

    private static Tensor Update(Tensor xS, Tensor d, double alphaBarS, double alphaBarT)
    {
        double h = Lambda(alphaBarT) - Lambda(alphaBarS);
        double sigmaRatio = Math.Sqrt((1.0 - alphaBarT) / (1.0 - alphaBarS));
        double alphaT = Math.Sqrt(alphaBarT);
        using var xCoef = sigmaRatio.ToScalar();
        using var dCoef = (alphaT * (Math.Exp(-h) - 1.0)).ToScalar();
        return xCoef * xS - dCoef * d;
    }
}

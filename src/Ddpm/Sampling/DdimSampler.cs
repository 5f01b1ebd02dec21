using Ddpm.Diffusion;
using TorchSharp;
using static Ddpm.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>Where DDIM's last step lands.</summary>
public enum DdimFinalStep
{
    /// <summary>alpha_bar = 1: the last step returns the predicted x_0 (diffusers' set_alpha_to_one = True; improved-diffusion).</summary>
    One,
    /// <summary>alpha_bar = alpha_bar_0, the first timestep's (diffusers' set_alpha_to_one = False).</summary>
    AlphaBarZero,
}

/// <summary>DDIM's options: the shared ones plus eta, the final alpha_bar and which eps a threshold keeps.</summary>
public sealed record DdimOptions : SamplerOptions
{
    /// <summary>eta in [0, 1]: 0 is deterministic, 1 has the ancestral sampler's (fixedsmall) variance.</summary>
    public double Eta { get; init; }

    /// <summary>Where the last step lands; <see cref="DdimFinalStep.One"/> by default.</summary>
    public DdimFinalStep FinalStep { get; init; } = DdimFinalStep.One;

    /// <summary>
    /// With a threshold on x_0: true (the default, improved-diffusion and newer diffusers) re-derives eps from the
    /// thresholded x_0; false keeps the model's raw eps (Song et al.'s DDIM code and older diffusers), so only the x_0
    /// term of the update sees the threshold.
    /// </summary>
    public bool EpsFromThresholdedX0 { get; init; } = true;

    public override void Validate()
    {
        base.Validate();
        DdimSampler.CheckEta(Eta);
        if (!Enum.IsDefined(FinalStep)) throw new DdpmException($"ddim: final_step {FinalStep}: expected One or AlphaBarZero");
    }
}

/// <summary>
/// DDIM (Song et al. 2021) over a subset tau_1 &lt; ... &lt; tau_K of the original timesteps (50 evenly spaced by
/// default), with eta from 0 (deterministic) to 1 (the ancestral sampler's posterior variance). The step from tau_i goes
/// to tau_{i-1}, and the last one to <see cref="DdimOptions.FinalStep"/>. Coefficients are computed in float64 from the
/// original schedule's alpha_bar. Also encodes an image into its noise (<see cref="Encode"/>, DDIM inversion).
/// For eta &gt; 0 one noise draw per step.
/// </summary>
public sealed class DdimSampler(DdimOptions? options = null) : ISampler<DdimOptions>
{
    /// <summary>The registry name.</summary>
    public const string RegistryName = "ddim";

    /// <summary>The steps when none are asked for (at most T).</summary>
    public const int DefaultSteps = 50;

    public string Name => RegistryName;
    public DdimOptions Options { get; } = options ?? new DdimOptions();
    SamplerOptions ISampler.Options => Options;

    public ISampler With(SamplerOptions options) =>
        new DdimSampler(options as DdimOptions ?? throw SamplerRegistry.WrongOptions(Name, options));

    public int[] Timesteps(NoiseSchedule schedule) => Options.ResolveTimesteps(schedule, DefaultSteps, TimestepSpacing.Even);

    public string Describe(NoiseSchedule schedule)
    {
        var final = Options.FinalStep == DdimFinalStep.One ? "" : ", final alpha_bar_0";
        var eps = Options.EpsFromThresholdedX0 ? "" : ", raw eps";
        return $"{Name}, {Options.DescribeCommon(schedule, Timesteps(schedule).Length, TimestepSpacing.Even)}, eta {SamplerOptions.Num(Options.Eta)}{final}{eps}";
    }

    public ISamplerRun Begin(GaussianDiffusion diffusion, nn.Module<Tensor, Tensor, Tensor> model, int[] visited)
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        ArgumentNullException.ThrowIfNull(model);
        Options.Validate();
        return new Run(diffusion, model, visited, Options);
    }

    private sealed class Run(GaussianDiffusion diffusion, nn.Module<Tensor, Tensor, Tensor> model, int[] visited, DdimOptions options) : ISamplerRun
    {
        public SamplerStep Step(int k, Tensor x, Func<Tensor> noise)
        {
            var s = diffusion.Schedule;
            int t = visited[k];
            double alphaBar = s.AlphasCumprod[t];
            double alphaBarPrev = k + 1 < visited.Length ? s.AlphasCumprod[visited[k + 1]] : FinalAlphaBar(s, options.FinalStep);
            double sigma = Sigma(alphaBar, alphaBarPrev, options.Eta);
            var z = options.Eta > 0 ? noise() : null;
            var (eps, x0) = ModelPrediction.EpsAndX0(diffusion, model, x, t, options, options.EpsFromThresholdedX0);
            return new SamplerStep(DdimSampler.Step(x0, eps, alphaBarPrev, sigma, z), x0);
        }

        public void Dispose() { }
    }

    /// <summary>The alpha_bar the last step lands at: 1, or alpha_bar_0.</summary>
    public static double FinalAlphaBar(NoiseSchedule schedule, DdimFinalStep final)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        return final == DdimFinalStep.AlphaBarZero ? schedule.AlphasCumprod[0] : 1.0;
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
        var encoder = new Encoder(kept);
        using var result = encoder.Sample(diffusion, model, x0.shape, new SamplingRun { Start = x0 }, device, progress, cancellationToken);
        return result.Samples.detach().clone();
    }

    /// <summary>DDIM inversion as a sampler whose visits go up in t (used only by <see cref="Encode"/>).</summary>
    private sealed class Encoder(int[] kept) : ISampler
    {
        private static readonly DdimOptions NoThreshold = new() { Threshold = X0Threshold.None };
        public string Name => "ddim-inversion";
        public SamplerOptions Options => NoThreshold;
        public ISampler With(SamplerOptions options) => throw new NotSupportedException();
        public string Describe(NoiseSchedule schedule) => Name;

        // Visit k evaluates the model at tau_{k-1} (tau_1 for the clean start) and lands at tau_k.
        public int[] Timesteps(NoiseSchedule schedule) => kept.Select((t, k) => k == 0 ? t : kept[k - 1]).ToArray();

        public ISamplerRun Begin(GaussianDiffusion diffusion, nn.Module<Tensor, Tensor, Tensor> model, int[] visited) =>
            new Run(diffusion, model, visited, kept);

        private sealed class Run(GaussianDiffusion diffusion, nn.Module<Tensor, Tensor, Tensor> model, int[] visited, int[] kept) : ISamplerRun
        {
            public SamplerStep Step(int k, Tensor x, Func<Tensor> noise)
            {
                var (eps, predX0) = ModelPrediction.EpsAndX0(diffusion, model, x, visited[k], NoThreshold);
                var start = k == 0 ? x.alias() : predX0;
                return new SamplerStep(DdimSampler.Step(start, eps, diffusion.Schedule.AlphasCumprod[kept[k]], 0.0, null), start);
            }

            public void Dispose() { }
        }
    }

    /// <summary>eta in [0, 1]; larger values would need sqrt(1 - alpha_bar_prev - sigma^2) of a negative number.</summary>
    public static void CheckEta(double eta)
    {
        if (!(eta >= 0.0 && eta <= 1.0))
            throw DdpmException.ForSetting("eta", $"{SamplerOptions.Num(eta)}: expected a value in [0, 1] (0 = deterministic DDIM, 1 = DDPM's variance)");
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
        // Scalars passed to TorchSharp are explicit and held for the whole call; see Ddpm.Runtime.HeldScalars.
        // a.add(b, Int1) is a + b with its alpha held.
        using var x0Coef = Math.Sqrt(alphaBarPrev).ToScalar();
        using var epsCoef = direction.ToScalar();
        var next = (x0Coef * x0).add(epsCoef * eps, Int1);
        if (z is null || sigma == 0.0) return next;
        using var zCoef = sigma.ToScalar();
        return next.add(zCoef * z, Int1);
    }
}

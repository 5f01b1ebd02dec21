namespace Ddpm.Diffusion;

/// <summary>How the squared error of L_simple is weighted per timestep.</summary>
public enum LossWeightingKind
{
    /// <summary>Every t weighs the same in the network's own target (Ho et al. eq. 14, the paper's L_simple).</summary>
    None,
    /// <summary>
    /// Min-SNR-gamma (Hang et al. 2023, eq. 8): the x_0 error weighted by min(SNR_t, gamma), so the many
    /// nearly-clean timesteps stop dominating the gradient; written in each target's own error (see <see cref="LossWeighting.Weight"/>).
    /// </summary>
    MinSnr,
    /// <summary>
    /// Perception-prioritised weighting (Choi et al. 2022, eq. 8): L_simple's eps error weighted by 1 / (k + SNR_t)^gamma
    /// with k = 1, which moves weight from the clean end to the coarse-content stages.
    /// </summary>
    P2,
}

/// <summary>
/// A per-timestep weight of L_simple's squared error, computed once in float64 from the schedule. SNR_t is
/// alpha_bar_t / (1 - alpha_bar_t). The three targets' errors relate through the x_0 error:
/// |eps error|^2 = SNR_t |x_0 error|^2 and |v error|^2 = (1 + SNR_t) |x_0 error|^2, so a weight chosen for one target
/// is rewritten for the others to weigh the same quantity (mu is not supported: its error is not a pure rescaling
/// of the x_0 error at every t under a learned variance, and no paper weights it).
/// </summary>
/// <param name="Kind">Which weighting.</param>
/// <param name="Gamma">Min-SNR's gamma (the paper's 5) or P2's gamma (the paper's 1).</param>
public sealed record LossWeighting(LossWeightingKind Kind, double Gamma)
{
    /// <summary>P2's k (Choi et al. use 1 throughout).</summary>
    public const double P2K = 1.0;

    /// <summary>The paper's L_simple: no weighting.</summary>
    public static LossWeighting None { get; } = new(LossWeightingKind.None, 0);

    /// <summary>The gamma each paper recommends: 5 for min-SNR, 1 for P2 (0 for none).</summary>
    public static double DefaultGamma(LossWeightingKind kind) => kind switch
    {
        LossWeightingKind.MinSnr => 5.0,
        LossWeightingKind.P2 => 1.0,
        _ => 0.0,
    };

    /// <summary><paramref name="kind"/> with its paper's gamma, or with <paramref name="gamma"/> when given.</summary>
    public static LossWeighting Of(LossWeightingKind kind, double? gamma = null) =>
        kind == LossWeightingKind.None ? None : new(kind, gamma ?? DefaultGamma(kind));

    /// <summary>Throws <see cref="DdpmException"/> naming the setting when this weighting cannot serve the objective.</summary>
    public void Check(PredictionType prediction, LossType loss)
    {
        if (Kind == LossWeightingKind.None) return;
        if (!Enum.IsDefined(Kind)) throw DdpmException.ForSetting("loss_weighting", $"{Kind}: expected none, min-snr or p2");
        if (!(double.IsFinite(Gamma) && Gamma > 0))
            throw DdpmException.ForSetting("loss_weight_gamma", $"{Gamma}: expected a positive number");
        if (prediction == PredictionType.Mean)
            throw DdpmException.ForSetting("loss_weighting", "weights the eps, x0 or v error; prediction mu has none of them");
        if (loss == LossType.Vlb)
            throw DdpmException.ForSetting("loss_weighting", "weights L_simple; loss vlb has no L_simple term");
    }

    /// <summary>
    /// The weight of the squared error of <paramref name="prediction"/>'s target at SNR <paramref name="snr"/>.
    /// Min-SNR: min(SNR, gamma) on the x_0 error, so min(SNR, gamma) / SNR on eps's and min(SNR, gamma) / (SNR + 1) on v's.
    /// P2: 1 / (k + SNR)^gamma on eps's error, so SNR / (k + SNR)^gamma on x_0's and that / (SNR + 1) on v's.
    /// </summary>
    public double Weight(double snr, PredictionType prediction)
    {
        if (Kind == LossWeightingKind.None) return 1.0;
        // On eps's error, written so that SNR = 0 (pure noise) needs no division: min(SNR, gamma) / SNR is 1 up to gamma.
        double onEps = Kind switch
        {
            LossWeightingKind.MinSnr => snr <= Gamma ? 1.0 : Gamma / snr,
            LossWeightingKind.P2 => 1.0 / Math.Pow(P2K + snr, Gamma),
            _ => throw new DdpmException($"loss weighting {Kind}: expected none, min-snr or p2"),
        };
        return prediction switch
        {
            PredictionType.Epsilon => onEps,
            PredictionType.StartX => onEps * snr,
            PredictionType.Velocity => onEps * snr / (snr + 1.0),
            _ => throw new DdpmException($"loss weighting {Kind} does not apply to prediction {prediction}"),
        };
    }

    /// <summary>The weight of every timestep of <paramref name="schedule"/> (float64), or null for <see cref="LossWeightingKind.None"/>.</summary>
    public double[]? Table(NoiseSchedule schedule, PredictionType prediction)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        if (Kind == LossWeightingKind.None) return null;
        var weights = new double[schedule.Timesteps];
        for (int t = 0; t < weights.Length; t++)
        {
            double alphaBar = schedule.AlphasCumprod[t];
            weights[t] = Weight(alphaBar / (1.0 - alphaBar), prediction);
        }
        return weights;
    }
}

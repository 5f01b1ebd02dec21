namespace Ddpm.Diffusion;

/// <summary>The named beta schedules.</summary>
public enum ScheduleKind
{
    /// <summary>Ho et al. 2020: betas evenly spaced (float64 linspace) from betaStart to betaEnd.</summary>
    Linear,
    /// <summary>Nichol and Dhariwal 2021: alpha_bar follows a squared cosine, betas clipped at maxBeta.</summary>
    Cosine,
    /// <summary>Jabri et al. 2022 as in lucidrains' denoising-diffusion-pytorch: alpha_bar follows a sigmoid over [-3, 3].</summary>
    Sigmoid,
}

/// <summary>
/// A variance schedule beta_0..beta_{T-1} and every per-timestep quantity the diffusion needs, all computed in float64.
/// Timesteps are 0-based as in the original code: index t = 0 is the paper's t = 1 and index T-1 is the paper's T.
/// Every array has length <see cref="Timesteps"/>. The arrays are shared, not copied: do not modify them.
/// </summary>
public sealed class NoiseSchedule
{
    /// <summary>The largest number of timesteps accepted (the paper uses 1000; improved DDPM up to 4000).</summary>
    public const int MaxTimesteps = 100_000;

    /// <summary>Number of diffusion steps T.</summary>
    public int Timesteps { get; }

    /// <summary>The factory that made this schedule; null for <see cref="FromBetas"/>.</summary>
    public ScheduleKind? Kind { get; }

    /// <summary>beta_t.</summary>
    public double[] Betas { get; }
    /// <summary>alpha_t = 1 - beta_t.</summary>
    public double[] Alphas { get; }
    /// <summary>alpha_bar_t = prod_{s &lt;= t} alpha_s.</summary>
    public double[] AlphasCumprod { get; }
    /// <summary>alpha_bar_{t-1}, with 1 at t = 0.</summary>
    public double[] AlphasCumprodPrev { get; }
    /// <summary>sqrt(alpha_bar_t).</summary>
    public double[] SqrtAlphasCumprod { get; }
    /// <summary>sqrt(1 - alpha_bar_t).</summary>
    public double[] SqrtOneMinusAlphasCumprod { get; }
    /// <summary>log(1 - alpha_bar_t).</summary>
    public double[] LogOneMinusAlphasCumprod { get; }
    /// <summary>sqrt(1 / alpha_bar_t).</summary>
    public double[] SqrtRecipAlphasCumprod { get; }
    /// <summary>sqrt(1 / alpha_bar_t - 1).</summary>
    public double[] SqrtRecipm1AlphasCumprod { get; }
    /// <summary>Variance of q(x_{t-1} | x_t, x_0): beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t); 0 at t = 0.</summary>
    public double[] PosteriorVariance { get; }
    /// <summary>
    /// log of the posterior variance with t = 0 borrowing t = 1's value (the original code's
    /// log(append(posterior_variance[1], posterior_variance[1:])), since the variance at t = 0 is 0).
    /// When T = 1 there is no t = 1: the value at t = 0 is then log(beta_0).
    /// </summary>
    public double[] PosteriorLogVarianceClipped { get; }
    /// <summary>Coefficient of x_0 in the posterior mean: beta_t sqrt(alpha_bar_{t-1}) / (1 - alpha_bar_t).</summary>
    public double[] PosteriorMeanCoef1 { get; }
    /// <summary>Coefficient of x_t in the posterior mean: (1 - alpha_bar_{t-1}) sqrt(alpha_t) / (1 - alpha_bar_t).</summary>
    public double[] PosteriorMeanCoef2 { get; }

    private NoiseSchedule(double[] betas, ScheduleKind? kind)
    {
        int n = betas.Length;
        Timesteps = n;
        Kind = kind;
        Betas = betas;
        Alphas = new double[n];
        AlphasCumprod = new double[n];
        AlphasCumprodPrev = new double[n];
        SqrtAlphasCumprod = new double[n];
        SqrtOneMinusAlphasCumprod = new double[n];
        LogOneMinusAlphasCumprod = new double[n];
        SqrtRecipAlphasCumprod = new double[n];
        SqrtRecipm1AlphasCumprod = new double[n];
        PosteriorVariance = new double[n];
        PosteriorLogVarianceClipped = new double[n];
        PosteriorMeanCoef1 = new double[n];
        PosteriorMeanCoef2 = new double[n];

        double cumprod = 1.0;
        for (int t = 0; t < n; t++)
        {
            double beta = betas[t];
            double alpha = 1.0 - beta;
            double prev = cumprod;
            cumprod *= alpha;
            Alphas[t] = alpha;
            AlphasCumprod[t] = cumprod;
            AlphasCumprodPrev[t] = prev;
            SqrtAlphasCumprod[t] = Math.Sqrt(cumprod);
            SqrtOneMinusAlphasCumprod[t] = Math.Sqrt(1.0 - cumprod);
            LogOneMinusAlphasCumprod[t] = Math.Log(1.0 - cumprod);
            SqrtRecipAlphasCumprod[t] = Math.Sqrt(1.0 / cumprod);
            SqrtRecipm1AlphasCumprod[t] = Math.Sqrt(1.0 / cumprod - 1.0);
            PosteriorVariance[t] = beta * (1.0 - prev) / (1.0 - cumprod);
            PosteriorMeanCoef1[t] = beta * Math.Sqrt(prev) / (1.0 - cumprod);
            PosteriorMeanCoef2[t] = (1.0 - prev) * Math.Sqrt(alpha) / (1.0 - cumprod);
        }
        if (n > 0 && !(AlphasCumprod[0] < 1.0))
            throw new DdpmException($"betas: beta[0] = {R(betas[0])} is too small for float64 (1 - beta rounds to 1)");
        if (n > 0 && !(AlphasCumprod[n - 1] > 0.0))
            throw new DdpmException($"betas: alpha_bar underflows to 0 before t = {n - 1}; use fewer steps or smaller betas");

        for (int t = 1; t < n; t++) PosteriorLogVarianceClipped[t] = Math.Log(PosteriorVariance[t]);
        PosteriorLogVarianceClipped[0] = n > 1 ? PosteriorLogVarianceClipped[1] : Math.Log(betas[0]);
    }

    /// <summary>The paper's linear schedule: beta_t = linspace(betaStart, betaEnd, T) in float64.</summary>
    public static NoiseSchedule Linear(int timesteps, double betaStart = 1e-4, double betaEnd = 0.02)
    {
        CheckTimesteps(timesteps, "linear schedule");
        CheckBeta(betaStart, "linear schedule: betaStart");
        CheckBeta(betaEnd, "linear schedule: betaEnd");
        var betas = new double[timesteps];
        if (timesteps == 1)
        {
            betas[0] = betaStart;
        }
        else
        {
            double step = (betaEnd - betaStart) / (timesteps - 1);
            for (int i = 0; i < timesteps - 1; i++) betas[i] = betaStart + i * step;
            betas[timesteps - 1] = betaEnd;
        }
        return new NoiseSchedule(betas, ScheduleKind.Linear);
    }

    /// <summary>
    /// The cosine schedule of Nichol and Dhariwal: with f(u) = cos(((u / T) + s) / (1 + s) * pi / 2)^2,
    /// beta_i = min(1 - f(i + 1) / f(i), maxBeta) for i = 0..T-1.
    /// </summary>
    public static NoiseSchedule Cosine(int timesteps, double s = 0.008, double maxBeta = 0.999)
    {
        CheckTimesteps(timesteps, "cosine schedule");
        if (!double.IsFinite(s) || s < 0)
            throw new DdpmException($"cosine schedule: offset s = {R(s)} must be finite and >= 0");
        CheckBeta(maxBeta, "cosine schedule: maxBeta");
        double F(int u)
        {
            double c = Math.Cos(((double)u / timesteps + s) / (1.0 + s) * Math.PI / 2.0);
            return c * c;
        }
        var betas = new double[timesteps];
        for (int i = 0; i < timesteps; i++)
            betas[i] = Math.Min(1.0 - F(i + 1) / F(i), maxBeta);
        return FromBetasCore(betas, ScheduleKind.Cosine, "cosine schedule");
    }

    /// <summary>
    /// The sigmoid schedule (lucidrains' default parameters: start -3, end 3, tau 1): with u = i / T and
    /// g(u) = (sigmoid(end / tau) - sigmoid((u (end - start) + start) / tau)) / (sigmoid(end / tau) - sigmoid(start / tau)),
    /// alpha_bar(u) = g(u) / g(0) and beta_i = min(1 - alpha_bar((i + 1) / T) / alpha_bar(i / T), maxBeta), i = 0..T-1.
    /// Everything is in float64 (lucidrains computes sigmoid(start / tau) and sigmoid(end / tau) in float32, which moves
    /// alpha_bar by about 1e-8). The last beta is always maxBeta, since g(1) = 0.
    /// </summary>
    public static NoiseSchedule Sigmoid(int timesteps, double start = -3, double end = 3, double tau = 1, double maxBeta = 0.999)
    {
        CheckTimesteps(timesteps, "sigmoid schedule");
        if (!double.IsFinite(start) || !double.IsFinite(end) || !(end > start))
            throw new DdpmException($"sigmoid schedule: start {R(start)} and end {R(end)} must be finite with start < end");
        if (!double.IsFinite(tau) || tau <= 0)
            throw new DdpmException($"sigmoid schedule: tau = {R(tau)} must be finite and positive");
        CheckBeta(maxBeta, "sigmoid schedule: maxBeta");
        static double Sig(double x) => 1.0 / (1.0 + Math.Exp(-x));
        double vStart = Sig(start / tau), vEnd = Sig(end / tau);
        double G(int i) => (vEnd - Sig(((double)i / timesteps * (end - start) + start) / tau)) / (vEnd - vStart);
        double g0 = G(0);
        var betas = new double[timesteps];
        for (int i = 0; i < timesteps; i++)
            betas[i] = Math.Min(1.0 - (G(i + 1) / g0) / (G(i) / g0), maxBeta);
        return FromBetasCore(betas, ScheduleKind.Sigmoid, "sigmoid schedule");
    }

    /// <summary>The named schedule with its default parameters.</summary>
    public static NoiseSchedule Create(ScheduleKind kind, int timesteps) => kind switch
    {
        ScheduleKind.Linear => Linear(timesteps),
        ScheduleKind.Cosine => Cosine(timesteps),
        ScheduleKind.Sigmoid => Sigmoid(timesteps),
        _ => throw new DdpmException($"schedule kind {kind}: expected Linear, Cosine or Sigmoid"),
    };

    /// <summary>A schedule from explicit betas (copied); each must be finite and in (0, 1).</summary>
    public static NoiseSchedule FromBetas(double[] betas)
    {
        ArgumentNullException.ThrowIfNull(betas);
        CheckTimesteps(betas.Length, "betas");
        return FromBetasCore((double[])betas.Clone(), null, "betas");
    }

    private static NoiseSchedule FromBetasCore(double[] betas, ScheduleKind? kind, string where)
    {
        for (int i = 0; i < betas.Length; i++) CheckBeta(betas[i], $"{where}: beta[{i}]");
        return new NoiseSchedule(betas, kind);
    }

    private static void CheckTimesteps(int timesteps, string where)
    {
        if (timesteps < 1 || timesteps > MaxTimesteps)
            throw new DdpmException($"{where}: {timesteps} timesteps, expected 1 to {MaxTimesteps}");
    }

    private static void CheckBeta(double beta, string where)
    {
        if (!double.IsFinite(beta) || beta <= 0.0 || beta >= 1.0)
            throw new DdpmException($"{where} = {R(beta)}, expected a finite value in (0, 1)");
    }

    private static string R(double v) => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
}

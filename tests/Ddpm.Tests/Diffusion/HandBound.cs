namespace Ddpm.Tests.Diffusion;

/// <summary>
/// The variational bound of one image written out in float64 loops from the formulas of reference.md section 1 (Ho et al.
/// 2020 eq. 5 and the original code's numerics), sharing nothing with the library: its own schedule, posterior,
/// Gaussian KL and discretised decoder. Used as the independent expectation for the library's bound.
/// </summary>
internal sealed class HandBound
{
    private readonly double[] _beta, _alphaBar, _alphaBarPrev, _posteriorVariance, _coef1, _coef2, _logVarTrue, _logVarModel;

    public int T => _beta.Length;

    /// <param name="betas">beta_0 .. beta_{T-1}.</param>
    /// <param name="fixedLarge">Model variance beta_t (log: log(append(posterior_variance[1], beta[1:]))); otherwise the
    /// posterior variance (log: the clipped one, t = 0 borrowing t = 1).</param>
    public HandBound(double[] betas, bool fixedLarge)
    {
        int n = betas.Length;
        _beta = betas;
        _alphaBar = new double[n];
        _alphaBarPrev = new double[n];
        _posteriorVariance = new double[n];
        _coef1 = new double[n];
        _coef2 = new double[n];
        double running = 1;
        for (int t = 0; t < n; t++)
        {
            _alphaBarPrev[t] = running;
            running *= 1 - betas[t];
            _alphaBar[t] = running;
            _posteriorVariance[t] = betas[t] * (1 - _alphaBarPrev[t]) / (1 - _alphaBar[t]);
            _coef1[t] = betas[t] * Math.Sqrt(_alphaBarPrev[t]) / (1 - _alphaBar[t]);
            _coef2[t] = (1 - _alphaBarPrev[t]) * Math.Sqrt(1 - betas[t]) / (1 - _alphaBar[t]);
        }
        _logVarTrue = Enumerable.Range(0, n).Select(t => Math.Log(_posteriorVariance[t == 0 ? 1 : t])).ToArray();
        _logVarModel = fixedLarge
            ? Enumerable.Range(0, n).Select(t => t == 0 ? Math.Log(_posteriorVariance[1]) : Math.Log(betas[t])).ToArray()
            : (double[])_logVarTrue.Clone();
    }

    public double AlphaBar(int t) => _alphaBar[t];
    public double Coef1(int t) => _coef1[t];
    public double Coef2(int t) => _coef2[t];
    public double ModelLogVariance(int t) => _logVarModel[t];

    /// <summary>KL(N(m1, e^lv1) || N(m2, e^lv2)) in nats.</summary>
    public static double NormalKl(double m1, double lv1, double m2, double lv2) =>
        0.5 * (-1 + lv2 - lv1 + Math.Exp(lv1 - lv2) + (m1 - m2) * (m1 - m2) * Math.Exp(-lv2));

    /// <summary>0.5 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).</summary>
    public static double Cdf(double x) => 0.5 * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

    /// <summary>log of the decoder's bin mass for data x under N(mean, e^logVar): 256 bins of width 2/255, edge bins take the tails, clamp 1e-12.</summary>
    public static double DecoderLogLikelihood(double x, double mean, double logVar)
    {
        double sd = Math.Exp(0.5 * logVar);
        double plus = Cdf((x - mean + 1 / 255.0) / sd), minus = Cdf((x - mean - 1 / 255.0) / sd);
        double p = x < -0.999 ? plus : x > 0.999 ? 1 - minus : plus - minus;
        return Math.Log(Math.Max(p, 1e-12));
    }

    /// <summary>L_T = KL(q(x_T | x_0) || N(0, I)) in bits/dim.</summary>
    public double Prior(double[] x0)
    {
        double ab = _alphaBar[T - 1];
        return x0.Average(x => NormalKl(Math.Sqrt(ab) * x, Math.Log(1 - ab), 0, 0)) / Math.Log(2);
    }

    /// <summary>
    /// The term at timestep t in bits/dim (t = 0: the decoder NLL; otherwise the KL between the posterior and the model's
    /// step), given x_t and the model's x_0 prediction (already clipped if the evaluation clips).
    /// </summary>
    public double Term(int t, double[] x0, double[] xt, double[] predX0)
    {
        double sum = 0;
        for (int i = 0; i < x0.Length; i++)
        {
            double modelMean = _coef1[t] * predX0[i] + _coef2[t] * xt[i];
            if (t == 0)
                sum -= DecoderLogLikelihood(x0[i], modelMean, _logVarModel[0]);
            else
                sum += NormalKl(_coef1[t] * x0[i] + _coef2[t] * xt[i], _logVarTrue[t], modelMean, _logVarModel[t]);
        }
        return sum / x0.Length / Math.Log(2);
    }

    /// <summary>x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise.</summary>
    public double[] Diffuse(int t, double[] x0, double[] noise) =>
        x0.Select((x, i) => Math.Sqrt(_alphaBar[t]) * x + Math.Sqrt(1 - _alphaBar[t]) * noise[i]).ToArray();

    /// <summary>linspace(start, end, T) in float64.</summary>
    public static double[] Linear(int timesteps, double start, double end) =>
        Enumerable.Range(0, timesteps).Select(i => start + (end - start) * i / (timesteps - 1)).ToArray();
}

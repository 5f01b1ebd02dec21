using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

/// <summary>
/// Chi-square goodness-of-fit tests of the drawn timesteps against p_t: uniform, and importance sampling's
/// p_t proportional to the root mean square of the last 10 losses at t, mixed with uniform at 0.001 (improved DDPM;
/// reference.md section 3). Seeds are fixed, so each test is deterministic; the critical values are the upper 0.1 %
/// points, so a correct sampler passes with any seed 999 times in 1000, and a sampler off by a few percent fails.
/// </summary>
public class TimestepDrawFrequencyTests
{
    // Upper 0.1 % points of chi-square (P(X > c) = 0.001), from the regularised incomplete gamma function
    // (the NIST/SEMATECH e-Handbook table 1.3.6.7.4 lists the same: df 7 -> 24.322, df 49 -> 85.351).
    // Wilson-Hilferty cross-check, c ~ k (1 - 2/(9k) + z sqrt(2/(9k)))^3 with z_0.999 = 3.0902:
    // k = 7: 7 (1 - 0.031746 + 3.0902 * 0.178174)^3 = 7 * 1.518859^3 = 24.53; k = 49: 49 (1 - 0.004535 + 3.0902 *
    // 0.067344)^3 = 49 * 1.203574^3 = 85.43 (the approximation is slightly high for small k).
    private const double Chi2Df7At0001 = 24.322;
    private const double Chi2Df49At0001 = 85.351;

    /// <summary>Pearson's statistic sum_t (O_t - N p_t)^2 / (N p_t).</summary>
    private static double PearsonChi2(long[] drawn, double[] p)
    {
        var observed = new long[p.Length];
        foreach (var t in drawn) observed[t]++;
        double n = drawn.Length, chi2 = 0;
        for (int t = 0; t < p.Length; t++)
        {
            double e = n * p[t];
            chi2 += (observed[t] - e) * (observed[t] - e) / e;
        }
        return chi2;
    }

    [Fact]
    public void UniformDrawsFitTheUniformDistribution()
    {
        const int T = 50, n = 20000;
        var sampler = new UniformTimestepSampler(T);
        using var gen = new Generator(123, CPU);
        var (t, weights) = sampler.Sample(n, gen);
        using var _ = t;
        Assert.Null(weights);
        var drawn = t.data<long>().ToArray();
        Assert.All(drawn, x => Assert.InRange(x, 0, T - 1));
        var uniform = Enumerable.Repeat(1.0 / T, T).ToArray();
        double chi2 = PearsonChi2(drawn, uniform);
        Assert.True(chi2 < Chi2Df49At0001, $"chi-square {chi2:F2} with 49 degrees of freedom (critical {Chi2Df49At0001} at 0.1 %)");

        // Power: the same draws against q, 10 % heavier on the first half, are rejected. The statistic's expectation is
        // about 49 + N sum (1/50 - q_t)^2 / q_t = 49 + 20000 (25 * 0.002^2 / 0.022 + 25 * 0.002^2 / 0.018) = 49 + 202.
        var tilted = Enumerable.Range(0, T).Select(k => (k < T / 2 ? 1.1 : 0.9) / T).ToArray();
        Assert.True(PearsonChi2(drawn, tilted) > Chi2Df49At0001, "a 10 % tilt must be detected");
    }

    private static LossAwareTimestepSampler WarmedUp(int timesteps)
    {
        // Ten constant losses t + 1 at each t: rms t + 1, so p_t = 0.999 (t + 1) / sum + 0.001 / T.
        var s = new LossAwareTimestepSampler(timesteps);
        for (int t = 0; t < timesteps; t++)
            for (int k = 0; k < LossAwareTimestepSampler.HistoryPerTerm; k++)
                s.Update(tensor(new long[] { t }), tensor(new[] { (float)(t + 1) }));
        return s;
    }

    [Fact]
    public void ImportanceDrawsFitTheirProbabilitiesAndCarryTheirWeights()
    {
        const int T = 8, n = 20000;
        var s = WarmedUp(T);
        Assert.True(s.WarmedUp);
        // p_t by hand: sum of rms = 1 + ... + 8 = 36.
        var p = Enumerable.Range(0, T).Select(t => 0.999 * (t + 1) / 36.0 + 0.001 / T).ToArray();
        var got = s.Probabilities();
        for (int t = 0; t < T; t++) Assert.Equal(p[t], got[t], 14);

        using var gen = new Generator(2024, CPU);
        var (ts, w) = s.Sample(n, gen);
        using var _ = ts;
        using var __ = w;
        var drawn = ts.data<long>().ToArray();
        double chi2 = PearsonChi2(drawn, p);
        Assert.True(chi2 < Chi2Df7At0001, $"chi-square {chi2:F2} with 7 degrees of freedom (critical {Chi2Df7At0001} at 0.1 %)");
        // Power: the draws are far from uniform (p ranges from 0.028 to 0.222), so the uniform hypothesis is rejected.
        Assert.True(PearsonChi2(drawn, Enumerable.Repeat(1.0 / T, T).ToArray()) > 100 * Chi2Df7At0001);

        // Every draw's weight is 1 / (T p_t) (float32: relative error below 2^-24).
        var weights = w!.data<float>().ToArray();
        for (int i = 0; i < n; i++)
        {
            double expected = 1.0 / (T * p[drawn[i]]);
            Assert.True(Math.Abs(weights[i] - expected) <= 1e-7 * expected, $"weight {i}: {weights[i]} vs {expected}");
        }
    }
}

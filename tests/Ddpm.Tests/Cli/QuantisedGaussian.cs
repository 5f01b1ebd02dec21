namespace Ddpm.Tests.Cli;

/// <summary>
/// The distribution of the byte a PNG stores for a pixel drawn from N(m, s^2): ImageIO's quantisation round((x + 1) 127.5),
/// clamped to [0, 255], gives byte k for x in [e_{k-1}, e_k) with e_k = (k + 0.5) / 127.5 - 1 (ties have probability 0),
/// byte 0 below e_0 and byte 255 from e_254 up. Summed over independent pixels, these moments give the expected value and
/// standard error of a figure's pixel statistics.
/// </summary>
public static class QuantisedGaussian
{
    /// <summary>erfc by the Chebyshev fit of Numerical Recipes (2nd ed., section 6.2, erfcc): fractional error below 1.2e-7 everywhere.</summary>
    public static double Erfc(double x)
    {
        double z = Math.Abs(x);
        double t = 1.0 / (1.0 + 0.5 * z);
        double r = t * Math.Exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
            + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? r : 2.0 - r;
    }

    /// <summary>The standard normal CDF: Phi(x) = erfc(-x / sqrt 2) / 2.</summary>
    public static double Phi(double x) => 0.5 * Erfc(-x / Math.Sqrt(2.0));

    /// <summary>P(byte = k) for k = 0..255.</summary>
    public static double[] ByteProbabilities(double m, double s)
    {
        var p = new double[256];
        double below = 0;
        for (int k = 0; k < 255; k++)
        {
            double cdf = Phi(((k + 0.5) / 127.5 - 1 - m) / s);
            p[k] = cdf - below;
            below = cdf;
        }
        p[255] = 1 - below;
        return p;
    }

    /// <summary>Expected value and variance of a statistic f(byte) for one pixel.</summary>
    public static (double Mean, double Variance) Moments(double[] p, Func<int, double> f)
    {
        double m1 = 0, m2 = 0;
        for (int k = 0; k < 256; k++)
        {
            double v = f(k);
            m1 += p[k] * v;
            m2 += p[k] * v * v;
        }
        return (m1, Math.Max(0, m2 - m1 * m1));
    }
}

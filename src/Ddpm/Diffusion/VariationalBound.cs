using TorchSharp;
using static Ddpm.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Ddpm.Diffusion;

/// <summary>
/// The elementary densities of the variational bound (Ho et al. 2020, eq. 5 and section 3.3): the KL divergence of two
/// diagonal Gaussians and the discretised Gaussian decoder over 256 bins, as in the original code
/// (<c>diffusion_tf/diffusion_utils_2.py</c>, <c>utils.py</c>). Values are in nats per element; the diffusion divides
/// by ln 2 and averages over the dimensions to report bits/dim. Every method broadcasts its arguments and returns
/// its result into the caller's dispose scope.
/// </summary>
public static class VariationalBound
{
    // Scalars passed to TorchSharp are explicit and held for the whole call; see Ddpm.Runtime.HeldScalars.
    // Each expression below is the one in its summary spelled as the ops TorchSharp runs for it: a + b is a.add(b, Int1),
    // a number minus a tensor is x.negative().add(a, Int1), x.square() is x.pow(Int2).

    /// <summary>ln 2, the nats in one bit.</summary>
    public static readonly double Ln2 = Math.Log(2.0);

    /// <summary>Half the width of one of the 256 bins of 8-bit data scaled to [-1, 1]: 1 / 255.</summary>
    public const double HalfBinWidth = 1.0 / 255.0;

    /// <summary>
    /// KL(N(mean1, exp(logVar1)) || N(mean2, exp(logVar2))) per element:
    /// 0.5 (-1 + lv2 - lv1 + exp(lv1 - lv2) + (m1 - m2)^2 exp(-lv2)).
    /// Evaluated as 0.5 (expm1(d) - d + (m1 - m2)^2 exp(-lv2)) with d = lv1 - lv2, the same value without the float32
    /// rounding of -1 + lv2 - lv1 + 1, which would otherwise add about 1e-7 nats to every term where the variances agree.
    /// </summary>
    public static Tensor NormalKl(Tensor mean1, Tensor logVar1, Tensor mean2, Tensor logVar2)
    {
        using var scope = NewDisposeScope();
        var d = logVar1 - logVar2;
        using var half = 0.5.ToScalar();
        var kl = half * (d.expm1() - d).add((mean1 - mean2).pow(Int2) * (-logVar2).exp(), Int1);
        return kl.MoveToOuterDisposeScope();
    }

    /// <summary>The tanh approximation of the standard normal CDF: 0.5 (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))).</summary>
    public static Tensor ApproxStandardNormalCdf(Tensor x)
    {
        using var scope = NewDisposeScope();
        using var half = 0.5.ToScalar();
        using var one = 1.0.ToScalar();
        using var sqrt2OverPi = Math.Sqrt(2.0 / Math.PI).ToScalar();
        using var cubic = 0.044715.ToScalar();
        using var three = 3.ToScalar();
        var cdf = half * (sqrt2OverPi * x.add(cubic * x.pow(three), Int1)).tanh().add(one, Int1);
        return cdf.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// log p(x) of the discretised Gaussian decoder (eq. 13) per element: the mass of N(mean, exp(logScale)^2) over the bin
    /// [x - 1/255, x + 1/255]; the edge bins take the whole tail (x &lt; -0.999: (-inf, x + 1/255]; x &gt; 0.999:
    /// [x - 1/255, inf)). The CDF is <see cref="ApproxStandardNormalCdf"/>; every probability is clamped below at
    /// 1e-12 before the log. <paramref name="x"/> is data in [-1, 1] on the 8-bit grid; <paramref name="logScales"/> is
    /// the log standard deviation (half the log variance). Computed in float64 and returned in the dtype of
    /// <paramref name="means"/>: in float32, 1 + tanh(z) and 1 - CDF move in steps of about 6e-8, so every bin mass below
    /// about 1e-7 (a pixel six standard deviations from the mean) came out as 0 or a multiple of 6e-8, e.g. a mass of 9e-12
    /// was clamped to 1e-12 (2.2 nats too many).
    /// </summary>
    public static Tensor DiscretizedGaussianLogLikelihood(Tensor x, Tensor means, Tensor logScales)
    {
        using var scope = NewDisposeScope();
        var dtype = means.dtype;
        (x, means, logScales) = (x.to(ScalarType.Float64), means.to(ScalarType.Float64), logScales.to(ScalarType.Float64));
        using var halfBin = HalfBinWidth.ToScalar();
        using var tiny = 1e-12.ToScalar();
        using var one = 1.0.ToScalar();
        using var lowEdge = (-0.999).ToScalar();
        using var highEdge = 0.999.ToScalar();
        var centred = x - means;
        var invStd = (-logScales).exp();
        var cdfPlus = ApproxStandardNormalCdf(invStd * centred.add(halfBin, Int1));
        var cdfMin = ApproxStandardNormalCdf(invStd * (centred - halfBin));
        var logCdfPlus = cdfPlus.clamp_min(tiny).log();
        var logOneMinusCdfMin = cdfMin.negative().add(one, Int1).clamp_min(tiny).log();
        var logCdfDelta = (cdfPlus - cdfMin).clamp_min(tiny).log();
        var logProbs = where(x < lowEdge, logCdfPlus, where(x > highEdge, logOneMinusCdfMin, logCdfDelta));
        return logProbs.to(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>The mean over every dimension but the first (the batch): shape (N).</summary>
    public static Tensor MeanFlat(Tensor x)
    {
        if (x.dim() < 2) return x.clone();
        var dims = Enumerable.Range(1, (int)x.dim() - 1).Select(d => (long)d).ToArray();
        return x.mean(dims);
    }

    /// <summary>Rounds data in [-1, 1] to the nearest of the 256 levels 2k/255 - 1, as 8-bit images store it.</summary>
    public static Tensor QuantizeTo8Bit(Tensor x)
    {
        using var scope = NewDisposeScope();
        using var minusOne = (-1.0).ToScalar();
        using var one = 1.0.ToScalar();
        using var levels = 127.5.ToScalar();
        var q = (x.clamp(minusOne, one).add(one, Int1) * levels).round() / levels - one;
        return q.MoveToOuterDisposeScope();
    }
}

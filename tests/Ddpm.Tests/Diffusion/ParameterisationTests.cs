using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Diffusion;

public class ParameterisationTests
{
    private static double[] D(Tensor x) => x.detach().to(ScalarType.Float64).cpu().contiguous().data<double>().ToArray();

    private static readonly long[] Steps = { 0, 1, 7, 100, 500, 998, 999 };

    private static (NoiseSchedule S, Tensor X0, Tensor Noise, Tensor T) Case()
    {
        var s = NoiseSchedule.Linear(1000);
        manual_seed(31);
        int n = Steps.Length;
        return (s, rand(n, 2, 3, 3) * 2 - 1, randn(n, 2, 3, 3), tensor(Steps, dtype: ScalarType.Int64));
    }

    /// <summary>
    /// Float32 tolerance of an x_0 recovered from prediction p at step t: rounding (about 1e-7 relative) amplified by the
    /// conversion's largest coefficient, 1/sqrt(alpha_bar) from eps or 1/coef1 from mu.
    /// </summary>
    private static double X0Tol(NoiseSchedule s, int t, PredictionType p) => 2e-6 * (1 + p switch
    {
        PredictionType.Mean => 1 / s.PosteriorMeanCoef1[t],
        PredictionType.StartX => 1,
        _ => Math.Sqrt(1 / s.AlphasCumprod[t]),
    });

    /// <summary>eps = (sqrt(1/ab) x_t - x_0) / sqrt(1/ab - 1): the x_0 error and x_t's rounding divided by sqrt(1/ab - 1).</summary>
    private static double EpsTol(NoiseSchedule s, int t, PredictionType p) =>
        (2e-6 * (1 + Math.Sqrt(1 / s.AlphasCumprod[t])) + X0Tol(s, t, p)) / Math.Sqrt(1 / s.AlphasCumprod[t] - 1);

    private static void AllNear(Tensor expected, Tensor actual, Func<int, double> tolAt, string what)
    {
        var e = D(expected); var a = D(actual);
        int per = e.Length / Steps.Length;
        for (int i = 0; i < e.Length; i++)
        {
            int t = (int)Steps[i / per];
            double tol = tolAt(t) * (1 + Math.Abs(e[i]));
            Assert.True(Math.Abs(e[i] - a[i]) <= tol, $"{what} at t = {t}: expected {e[i]:R}, got {a[i]:R}, tol {tol:R}");
        }
    }

    [Theory]
    [InlineData(PredictionType.Epsilon)]
    [InlineData(PredictionType.StartX)]
    [InlineData(PredictionType.Velocity)]
    [InlineData(PredictionType.Mean)]
    public void EveryPredictionConvertsBackToEpsAndX0(PredictionType prediction)
    {
        using var scope = NewDisposeScope();
        var (s, x0, noise, t) = Case();
        using var d = new GaussianDiffusion(s, VarianceType.FixedLarge, prediction);
        var xt = d.QSample(x0, t, noise);
        var target = d.ModelTarget(x0, xt, t, noise);
        var (eps, predX0) = d.PredictEpsAndX0(target, xt, t, clipDenoised: false);
        AllNear(x0, predX0, t => X0Tol(s, t, prediction), $"x0 ({prediction})");
        AllNear(noise, eps, t => EpsTol(s, t, prediction), $"eps ({prediction})");
        // The reverse mean is the true posterior mean whatever the model predicts.
        var (mean, _, _, _) = d.PMeanVarianceFromOutput(target, xt, t, clipDenoised: false);
        AllNear(d.PosteriorMeanVariance(x0, xt, t).Mean, mean, t => X0Tol(s, t, prediction), $"mean ({prediction})");
    }

    [Fact]
    public void ConversionsMatchTheirClosedFormsInDouble()
    {
        using var scope = NewDisposeScope();
        var (s, x0, noise, t) = Case();
        using var d = new GaussianDiffusion(s);
        var xt = d.QSample(x0, t, noise);
        var v = d.VelocityFrom(x0, t, noise);
        var mu = d.PosteriorMeanVariance(x0, xt, t).Mean;
        var a0 = D(x0); var e = D(noise); var vv = D(v); var x = D(xt);
        int per = a0.Length / Steps.Length;
        for (int i = 0; i < a0.Length; i++)
        {
            int k = (int)Steps[i / per];
            double ab = s.AlphasCumprod[k];
            Assert.Equal(Math.Sqrt(ab) * e[i] - Math.Sqrt(1 - ab) * a0[i], vv[i], 5e-6);
            // v and eps from each other through x_t: eps = sqrt(1 - ab) x_t + sqrt(ab) v.
            Assert.Equal(e[i], Math.Sqrt(1 - ab) * x[i] + Math.Sqrt(ab) * vv[i], 5e-6);
        }
        AllNear(x0, d.PredictX0FromVelocity(xt, t, v), k => X0Tol(s, k, PredictionType.Velocity), "x0 from v");
        AllNear(x0, d.PredictX0FromMean(xt, t, mu), k => X0Tol(s, k, PredictionType.Mean), "x0 from mu");
        AllNear(noise, d.PredictEpsFromX0(xt, t, x0), k => EpsTol(s, k, PredictionType.StartX), "eps from x0");
        AllNear(x0, d.PredictX0FromEps(xt, t, noise), k => X0Tol(s, k, PredictionType.Epsilon), "x0 from eps");
    }

    [Theory]
    [InlineData(PredictionType.Epsilon)]
    [InlineData(PredictionType.Velocity)]
    public void ClippedX0ComesWithTheEpsThatReproducesIt(PredictionType prediction)
    {
        using var scope = NewDisposeScope();
        var (s, _, noise, t) = Case();
        using var d = new GaussianDiffusion(s, VarianceType.FixedSmall, prediction);
        var x0 = rand(noise.shape) * 6 - 3; // mostly outside [-1, 1]
        var xt = d.QSample(x0, t, noise);
        var (eps, predX0) = d.PredictEpsAndX0(d.ModelTarget(x0, xt, t, noise), xt, t, clipDenoised: true);
        Assert.True(predX0.abs().max().item<float>() <= 1f);
        Assert.True(predX0.allclose(x0.clamp(-1, 1), rtol: 0, atol: 5e-3));
        AllNear(predX0, d.PredictX0FromEps(xt, t, eps), k => X0Tol(s, k, PredictionType.Epsilon), "x0 from the returned eps");
    }

    [Fact]
    public void EpsModelOutputIsReturnedUnchangedWithoutClipping()
    {
        using var scope = NewDisposeScope();
        var (s, _, noise, t) = Case();
        using var d = new GaussianDiffusion(s);
        var xt = randn(noise.shape);
        var (eps, _) = d.PredictEpsAndX0(noise, xt, t, clipDenoised: false);
        Assert.True(eps.equal(noise).all().item<bool>());
    }

    [Fact]
    public void LearnedRangeEndsAreTheTwoFixedVariances()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(1000);
        using var range = new GaussianDiffusion(s, VarianceType.LearnedRange, loss: LossType.Hybrid);
        using var small = new GaussianDiffusion(s, VarianceType.FixedSmall);
        using var large = new GaussianDiffusion(s, VarianceType.FixedLarge);
        var t = tensor(Steps, dtype: ScalarType.Int64);
        int n = Steps.Length;
        var xt = randn(n, 1, 2, 2);
        var pred = randn(n, 1, 2, 2);
        var atMinus1 = D(range.VarianceFromOutput(full(n, 1, 2, 2, -1f), xt, t).LogVariance);
        var atPlus1 = D(range.VarianceFromOutput(full(n, 1, 2, 2, 1f), xt, t).LogVariance);
        var (_, _, lvSmall, _) = small.PMeanVarianceFromOutput(pred, xt, t, false);
        var (_, _, lvLarge, _) = large.PMeanVarianceFromOutput(pred, xt, t, false);
        var sm = D(lvSmall); var lg = D(lvLarge);
        for (int i = 0; i < n; i++)
        {
            int k = (int)Steps[i];
            for (int j = 0; j < 4; j++)
            {
                Assert.Equal(sm[i], atMinus1[i * 4 + j]);
                // FixedLarge borrows t = 1's posterior variance at t = 0; learned_range's top end is log(beta_0) there.
                if (k > 0) Assert.Equal(lg[i], atPlus1[i * 4 + j]);
                else Assert.Equal((float)Math.Log(s.Betas[0]), (float)atPlus1[i * 4 + j]);
            }
        }
        // In between: the interpolation of the logs.
        var mid = D(range.VarianceFromOutput(full(n, 1, 2, 2, 0.5f), xt, t).LogVariance);
        for (int i = 0; i < n; i++)
        {
            int k = (int)Steps[i];
            double expected = 0.75 * Math.Log(s.Betas[k]) + 0.25 * s.PosteriorLogVarianceClipped[k];
            Assert.Equal(expected, mid[i * 4], 5);
        }
    }

    [Fact]
    public void LearnedVarianceIsTheExtraChannelsAsLogVariance()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Cosine(50);
        using var d = new GaussianDiffusion(s, VarianceType.Learned, loss: LossType.Vlb);
        var t = tensor(new long[] { 3, 40 }, dtype: ScalarType.Int64);
        var xt = randn(2, 3, 4, 4);
        var output = randn(2, 6, 4, 4);
        var (mean, variance, logVariance, predX0) = d.PMeanVarianceFromOutput(output, xt, t, false);
        Assert.True(logVariance.equal(output.narrow(1, 3, 3)).all().item<bool>());
        Assert.True(variance.allclose(output.narrow(1, 3, 3).exp()));
        Assert.True(predX0.allclose(d.PredictX0FromEps(xt, t, output.narrow(1, 0, 3).contiguous())));
        Assert.Equal(xt.shape, mean.shape);
        Assert.Equal(6, d.ModelOutputChannels(3));
        Assert.Throws<ArgumentException>(() => d.PMeanVarianceFromOutput(randn(2, 3, 4, 4), xt, t, false));
        Assert.Throws<InvalidOperationException>(() => d.ModelLogVariance);
    }

    [Fact]
    public void LearnedVarianceNeedsALossThatTrainsIt()
    {
        var s = NoiseSchedule.Linear(10);
        Assert.Throws<DdpmException>(() => new GaussianDiffusion(s, VarianceType.LearnedRange, loss: LossType.Simple));
        Assert.Throws<DdpmException>(() => new GaussianDiffusion(s, VarianceType.FixedLarge, loss: LossType.Hybrid));
        using var ok = new GaussianDiffusion(s, VarianceType.FixedSmall, loss: LossType.Vlb);
        Assert.False(ok.LearnsVariance);
    }
}

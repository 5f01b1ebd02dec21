using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Diffusion;

public class GaussianDiffusionTests
{
    private static void Near(double expected, double actual, double tol, string what) =>
        Assert.True(Math.Abs(expected - actual) <= tol, $"{what}: expected {expected:R}, got {actual:R} (tol {tol:R})");

    private static Tensor Ts(params long[] t) => tensor(t, dtype: ScalarType.Int64);

    [Fact]
    public void PosteriorMatchesBayesRule()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(1000);
        using var d = new GaussianDiffusion(s);
        long[] ts = { 1, 2, 10, 100, 500, 999 };
        int n = ts.Length;
        manual_seed(1);
        var x0 = randn(n, 3);
        var xt = randn(n, 3);
        var (mean, variance, logVar) = d.PosteriorMeanVariance(x0, xt, Ts(ts));
        Assert.Equal(new long[] { n, 3 }, mean.shape);
        Assert.Equal(new long[] { n, 1 }, variance.shape);
        var m = TensorData.Floats(mean); var v = TensorData.Floats(variance); var lv = TensorData.Floats(logVar);
        var a0 = TensorData.Floats(x0); var at = TensorData.Floats(xt);
        for (int i = 0; i < n; i++)
        {
            int t = (int)ts[i];
            double b = s.Betas[t];
            double abPrev = 1.0;
            for (int k = 0; k < t; k++) abPrev *= 1 - s.Betas[k];
            // q(x_t | x_{t-1}) as a function of y = x_{t-1}: precision (1-b)/b, centre x_t / sqrt(1-b);
            // q(x_{t-1} | x_0): precision 1/(1-abPrev), centre sqrt(abPrev) x_0. Their product is Gaussian:
            double precision = (1 - b) / b + 1 / (1 - abPrev);
            double varBayes = 1 / precision;
            Near(varBayes, v[i], 1e-6 * varBayes, $"variance t={t}");
            Near(Math.Log(varBayes), lv[i], 1e-5, $"log variance t={t}");
            for (int j = 0; j < 3; j++)
            {
                double mu = (Math.Sqrt(1 - b) * at[i * 3 + j] / b + Math.Sqrt(abPrev) * a0[i * 3 + j] / (1 - abPrev)) / precision;
                Near(mu, m[i * 3 + j], 2e-5, $"mean t={t}");
            }
        }
    }

    [Fact]
    public void PosteriorAtStepZeroIsTheStartPoint()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Cosine(100);
        using var d = new GaussianDiffusion(s, VarianceType.FixedSmall);
        var x0 = randn(2, 1, 4, 4);
        var xt = randn(2, 1, 4, 4);
        var (mean, variance, logVar) = d.PosteriorMeanVariance(x0, xt, Ts(0, 0));
        Assert.True(mean.allclose(x0, rtol: 0, atol: 1e-6));
        Assert.Equal(new long[] { 2, 1, 1, 1 }, variance.shape);
        Assert.Equal(0f, TensorData.Floats(variance)[0]);
        Near(Math.Log(s.PosteriorVariance[1]), TensorData.Floats(logVar)[0], 1e-5, "borrowed log variance");
    }

    [Fact]
    public void PredictX0FromEpsInvertsQSample()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(1000);
        using var d = new GaussianDiffusion(s);
        manual_seed(2);
        var x0 = rand(4, 2, 3, 3) * 2 - 1;
        var eps = randn(4, 2, 3, 3);
        long[] ts = { 0, 10, 400, 999 };
        var t = Ts(ts);
        var xt = d.QSample(x0, t, eps);
        var back = d.PredictX0FromEps(xt, t, eps);
        Assert.True(back.allclose(x0, rtol: 0, atol: 2e-3), "x0 recovered from x_t and eps");

        // Against the closed form in double, from the same x_t.
        var x = TensorData.Floats(xt); var e = TensorData.Floats(eps); var p = TensorData.Floats(back);
        var q = TensorData.Floats(x0);
        for (int i = 0; i < 4; i++)
        {
            double ab = 1.0;
            for (int k = 0; k <= ts[i]; k++) ab *= 1 - s.Betas[k];
            for (int j = 0; j < 18; j++)
            {
                int idx = i * 18 + j;
                double expectXt = Math.Sqrt(ab) * q[idx] + Math.Sqrt(1 - ab) * e[idx];
                Near(expectXt, x[idx], 1e-5, "x_t");
                double expect = Math.Sqrt(1 / ab) * x[idx] - Math.Sqrt(1 / ab - 1) * e[idx];
                Near(expect, p[idx], 1e-5 * Math.Max(1, Math.Abs(expect)) * Math.Sqrt(1 / ab), "x0 from eps");
            }
        }
    }

    [Fact]
    public void QMeanVarianceMatchesClosedForm()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Cosine(200);
        using var d = new GaussianDiffusion(s);
        var x0 = tensor(new float[] { 0.5f, -0.25f, 1f, 0f }).view(2, 2);
        var (mean, variance, logVariance) = d.QMeanVariance(x0, Ts(3, 150));
        var m = TensorData.Floats(mean);
        Near(Math.Sqrt(s.AlphasCumprod[3]) * 0.5, m[0], 1e-6, "mean");
        Near(Math.Sqrt(s.AlphasCumprod[150]) * 1.0, m[2], 1e-6, "mean");
        Near(1 - s.AlphasCumprod[150], TensorData.Floats(variance)[1], 1e-6, "variance");
        Near(Math.Log(1 - s.AlphasCumprod[3]), TensorData.Floats(logVariance)[0], 1e-5, "log variance");
    }

    [Fact]
    public void QSampleMomentsMatchTheClosedForm()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(1000);
        using var d = new GaussianDiffusion(s);
        const int n = 200_000;
        manual_seed(3);
        var x0 = tensor(new float[] { 0.8f, -0.3f }).view(1, 2).expand(n, 2).contiguous();
        var t = cat(new[] { full(n / 2, 50L, ScalarType.Int64), full(n / 2, 700L, ScalarType.Int64) });
        var xt = d.QSample(x0, t, randn(n, 2));
        CheckMoments(xt.narrow(0, 0, n / 2), new[] { 0.8, -0.3 }, s.AlphasCumprod[50], "t=50");
        CheckMoments(xt.narrow(0, n / 2, n / 2), new[] { 0.8, -0.3 }, s.AlphasCumprod[700], "t=700");
    }

    [Fact]
    public void QStepMomentsAndChainMatchTheClosedForm()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(1000);
        using var d = new GaussianDiffusion(s);
        const int n = 200_000;
        manual_seed(4);
        var start = tensor(new float[] { 0.6f, -0.9f }).view(1, 2).expand(n, 2).contiguous();

        // One step at t = 300: N(sqrt(1 - beta) x, beta).
        var one = d.QStep(start, full(n, 300L, ScalarType.Int64), randn(n, 2));
        var mean = TensorData.Floats(one.mean(new long[] { 0 }));
        var var = TensorData.Floats(one.var(0));
        double b = s.Betas[300];
        for (int j = 0; j < 2; j++)
        {
            double mu = Math.Sqrt(1 - b) * (j == 0 ? 0.6 : -0.9);
            Near(mu, mean[j], 5 * Math.Sqrt(b / n) + 1e-6, "one-step mean");
            Near(b, var[j], 5 * Math.Sqrt(2.0 / n) * b, "one-step variance");
        }

        // Chaining steps 0..t gives q(x_t | x_0).
        const int tEnd = 60;
        var x = start;
        for (int t = 0; t <= tEnd; t++)
        {
            using var step = NewDisposeScope();
            x = d.QStep(x, full(n, (long)t, ScalarType.Int64), randn(n, 2)).MoveToOuterDisposeScope();
        }
        CheckMoments(x, new[] { 0.6, -0.9 }, s.AlphasCumprod[tEnd], "chain");
    }

    private static void CheckMoments(Tensor xt, double[] x0, double alphaBar, string what)
    {
        long n = xt.shape[0];
        var mean = TensorData.Floats(xt.mean(new long[] { 0 }));
        var var = TensorData.Floats(xt.var(0));
        double v = 1 - alphaBar;
        for (int j = 0; j < x0.Length; j++)
        {
            Near(Math.Sqrt(alphaBar) * x0[j], mean[j], 5 * Math.Sqrt(v / n), $"{what} mean[{j}]");
            Near(v, var[j], 5 * Math.Sqrt(2.0 / n) * v, $"{what} variance[{j}]");
        }
    }

    [Theory]
    [InlineData(VarianceType.FixedLarge)]
    [InlineData(VarianceType.FixedSmall)]
    public void PMeanVarianceMatchesEquation11(VarianceType vt)
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(1000);
        using var d = new GaussianDiffusion(s, vt);
        // A known eps-model: eps = 0.3 x + 0.1.
        using var model = new FuncModel((x, _) => x * 0.3f + 0.1f);
        manual_seed(5);
        long[] ts = { 0, 1, 37, 999 };
        var xt = randn(4, 3);
        var (mean, variance, logVar, predX0) = d.PMeanVariance(model, xt, Ts(ts), clipDenoised: false);
        var x = TensorData.Floats(xt); var m = TensorData.Floats(mean); var p = TensorData.Floats(predX0);
        var v = TensorData.Floats(variance); var lv = TensorData.Floats(logVar);
        for (int i = 0; i < 4; i++)
        {
            int t = (int)ts[i];
            double b = s.Betas[t], ab = s.AlphasCumprod[t];
            for (int j = 0; j < 3; j++)
            {
                double xi = x[i * 3 + j], eps = 0.3 * xi + 0.1;
                double mu = (xi - b / Math.Sqrt(1 - ab) * eps) / Math.Sqrt(1 - b); // eq. 11
                Near(mu, m[i * 3 + j], 2e-5 * Math.Max(1, Math.Abs(mu)), $"mean t={t}");
                double x0 = (xi - Math.Sqrt(1 - ab) * eps) / Math.Sqrt(ab);
                Near(x0, p[i * 3 + j], 2e-5 * Math.Max(1, Math.Abs(x0)), $"x0 t={t}");
            }
            double expectVar, expectLogVar;
            if (vt == VarianceType.FixedLarge)
            {
                expectVar = b;
                expectLogVar = t == 0 ? Math.Log(s.PosteriorVariance[1]) : Math.Log(b);
            }
            else
            {
                expectVar = s.PosteriorVariance[t];
                expectLogVar = Math.Log(s.PosteriorVariance[t == 0 ? 1 : t]);
            }
            Near(expectVar, v[i], 1e-6 * expectVar, $"variance t={t}");
            Near(expectLogVar, lv[i], 1e-5, $"log variance t={t}");
        }
    }

    [Fact]
    public void FixedSmallAndFixedLargeLogVariances()
    {
        var s = NoiseSchedule.Linear(1000);
        using var small = new GaussianDiffusion(s, VarianceType.FixedSmall);
        using var large = new GaussianDiffusion(s);
        Assert.Equal(VarianceType.FixedLarge, large.VarianceType);
        Assert.Equal(1000, large.Timesteps);
        Assert.Same(s, large.Schedule);
        Assert.Equal(Math.Log(s.PosteriorVariance[1]), large.ModelLogVariance[0]);
        Assert.Equal(Math.Log(s.PosteriorVariance[1]), small.ModelLogVariance[0]);
        for (int t = 1; t < 1000; t++)
        {
            Assert.Equal(Math.Log(s.Betas[t]), large.ModelLogVariance[t]);
            Assert.Equal(Math.Log(s.PosteriorVariance[t]), small.ModelLogVariance[t], 14);
            Assert.True(large.ModelLogVariance[t] > small.ModelLogVariance[t], "beta_t exceeds the posterior variance");
        }
        using var single = new GaussianDiffusion(NoiseSchedule.Linear(1), VarianceType.FixedLarge);
        Assert.Equal(Math.Log(1e-4), single.ModelLogVariance[0]);
    }

    [Fact]
    public void PSampleAddsScaledNoiseExceptAtStepZero()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Cosine(100);
        foreach (var vt in new[] { VarianceType.FixedLarge, VarianceType.FixedSmall })
        {
            using var d = new GaussianDiffusion(s, vt);
            using var model = FuncModel.Zero();
            manual_seed(6);
            var xt = randn(3, 1, 2, 2);
            var noise = randn(3, 1, 2, 2);
            var t = Ts(0, 5, 99);
            var (mean, _, logVar, _) = d.PMeanVariance(model, xt, t, clipDenoised: false);
            var (sample, predX0) = d.PSample(model, xt, t, noise, clipDenoised: false);
            Assert.Equal(xt.shape, sample.shape);
            var m = TensorData.Floats(mean); var smp = TensorData.Floats(sample); var z = TensorData.Floats(noise);
            var x = TensorData.Floats(xt); var p = TensorData.Floats(predX0);
            for (int i = 0; i < 3; i++)
            {
                int ti = i switch { 0 => 0, 1 => 5, _ => 99 };
                double sigma = Math.Sqrt(vt == VarianceType.FixedLarge ? s.Betas[ti] : s.PosteriorVariance[ti]);
                for (int j = 0; j < 4; j++)
                {
                    int k = i * 4 + j;
                    // eps = 0: x0 = x_t / sqrt(alpha_bar), mean = coef1 x0 + coef2 x_t.
                    double x0 = x[k] / Math.Sqrt(s.AlphasCumprod[ti]);
                    Near(x0, p[k], 1e-5 * Math.Max(1, Math.Abs(x0)), "pred x0");
                    double mu = s.PosteriorMeanCoef1[ti] * x0 + s.PosteriorMeanCoef2[ti] * x[k];
                    Near(mu, m[k], 1e-5 * Math.Max(1, Math.Abs(mu)), "mean");
                    if (ti == 0) Assert.Equal(m[k], smp[k]);
                    else Near(mu + sigma * z[k], smp[k], 2e-5 * Math.Max(1, Math.Abs(mu)), $"sample t={ti}");
                }
            }
            Assert.NotNull(logVar);
        }
    }

    [Fact]
    public void ClipDenoisedClampsPredictedStart()
    {
        using var scope = NewDisposeScope();
        using var d = new GaussianDiffusion(NoiseSchedule.Linear(1000));
        using var model = FuncModel.Zero();
        var xt = full(new long[] { 2, 3 }, 5f);
        var t = Ts(10, 500);
        var (_, _, _, clipped) = d.PMeanVariance(model, xt, t, clipDenoised: true);
        var (_, _, _, raw) = d.PMeanVariance(model, xt, t, clipDenoised: false);
        Assert.All(TensorData.Floats(clipped), v => Assert.Equal(1f, v));
        Assert.All(TensorData.Floats(raw), v => Assert.True(v > 5f));
    }

    [Fact]
    public void TrainingLossesAreLSimplePerExample()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(1000);
        using var d = new GaussianDiffusion(s);
        manual_seed(7);
        var x0 = rand(5, 2, 4, 4) * 2 - 1;
        var noise = randn(5, 2, 4, 4);
        var t = Ts(0, 1, 250, 600, 999);

        using var zero = FuncModel.Zero();
        var lossZero = d.TrainingLosses(zero, x0, t, noise);
        Assert.Equal(new long[] { 5 }, lossZero.shape);
        Assert.True(lossZero.allclose(noise.square().mean(new long[] { 1, 2, 3 }), rtol: 1e-5, atol: 1e-6));

        // An oracle that knows x0 recovers the noise from x_t exactly (up to float32 rounding).
        var sab = tensor(s.SqrtAlphasCumprod.Select(v => (float)v).ToArray());
        var s1m = tensor(s.SqrtOneMinusAlphasCumprod.Select(v => (float)v).ToArray());
        using var oracle = new FuncModel((x, tt) =>
            (x - sab.gather(0, tt).view(-1, 1, 1, 1) * x0) / s1m.gather(0, tt).view(-1, 1, 1, 1));
        var lossOracle = TensorData.Floats(d.TrainingLosses(oracle, x0, t, noise));
        Assert.All(lossOracle, v => Assert.True(v < 1e-6, $"oracle loss {v}"));
    }

    [Fact]
    public void WorksForVectorsAndImagesAndRejectsBadShapes()
    {
        using var scope = NewDisposeScope();
        using var d = new GaussianDiffusion(NoiseSchedule.Linear(10));
        var t = Ts(1, 2);
        Assert.Equal(new long[] { 2, 7 }, d.QSample(zeros(2, 7), t, randn(2, 7)).shape);
        Assert.Equal(new long[] { 2, 3, 5, 5 }, d.QSample(zeros(2, 3, 5, 5), t, randn(2, 3, 5, 5)).shape);
        Assert.Equal(new long[] { 2, 1, 1, 1, 1 }, d.QMeanVariance(zeros(new long[] { 2, 1, 2, 2, 2 }), t).Variance.shape);
        // int32 timesteps are accepted.
        Assert.Equal(new long[] { 2, 7 }, d.QSample(zeros(2, 7), t.to(ScalarType.Int32), randn(2, 7)).shape);
        Assert.Throws<ArgumentException>(() => d.QSample(zeros(2), t, randn(2)));
        Assert.Throws<ArgumentException>(() => d.QSample(zeros(3, 7), t, randn(3, 7)));
        Assert.Throws<ArgumentException>(() => d.QSample(zeros(2, 7), t, randn(2, 6)));
    }

    [Fact]
    public void MethodsLeaveOnlyTheirResultsAlive()
    {
        using var d = new GaussianDiffusion(NoiseSchedule.Linear(50));
        using var model = FuncModel.Zero();
        using var x = randn(4, 3);
        using var t = Ts(0, 1, 2, 49);
        using var noise = randn(4, 3);
        // Warm the per-device coefficient cache first.
        using (NewDisposeScope()) d.PSample(model, x, t, noise, true);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        using (var scope = NewDisposeScope())
        {
            var (sample, predX0) = d.PSample(model, x, t, noise, true);
            Assert.Equal(before + 2, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
            var loss = d.TrainingLosses(model, x, t, noise);
            Assert.Equal(before + 3, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        }
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}

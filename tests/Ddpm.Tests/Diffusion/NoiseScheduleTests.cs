using System.Globalization;
using System.Text.Json;
using Ddpm.Diffusion;

namespace Ddpm.Tests.Diffusion;

public class NoiseScheduleTests
{
    private static void Close(double expected, double actual, double rel, string what)
    {
        double tol = rel * Math.Max(1.0, Math.Abs(expected));
        Assert.True(Math.Abs(expected - actual) <= tol, $"{what}: expected {expected:R}, got {actual:R}");
    }

    [Fact]
    public void LinearBetasAreAFloat64Linspace()
    {
        var s = NoiseSchedule.Linear(1000);
        Assert.Equal(1000, s.Timesteps);
        Assert.Equal(ScheduleKind.Linear, s.Kind);
        Assert.Equal(1e-4, s.Betas[0]);
        Assert.Equal(0.02, s.Betas[999]);
        for (int i = 0; i < 1000; i++)
        {
            double hand = 1e-4 + (0.02 - 1e-4) * i / 999.0;
            Close(hand, s.Betas[i], 1e-15, $"beta[{i}]");
        }
        // Evenly spaced.
        for (int i = 1; i < 1000; i++) Close((0.02 - 1e-4) / 999.0, s.Betas[i] - s.Betas[i - 1], 1e-12, $"step {i}");
    }

    [Theory]
    [InlineData(ScheduleKind.Linear)]
    [InlineData(ScheduleKind.Cosine)]
    public void AlphaBarIsTheRunningProductInDouble(ScheduleKind kind)
    {
        var s = NoiseSchedule.Create(kind, 1000);
        Assert.Equal(kind, s.Kind);
        double prod = 1.0;
        for (int t = 0; t < 1000; t++)
        {
            Close(prod, s.AlphasCumprodPrev[t], 1e-14, $"alpha_bar_prev[{t}]");
            prod *= 1.0 - s.Betas[t];
            Close(1.0 - s.Betas[t], s.Alphas[t], 1e-15, $"alpha[{t}]");
            Assert.True(Math.Abs(prod - s.AlphasCumprod[t]) <= 1e-14 * prod, $"alpha_bar[{t}]");
            Close(Math.Sqrt(prod), s.SqrtAlphasCumprod[t], 1e-14, "sqrt alpha_bar");
            Close(Math.Sqrt(1 - prod), s.SqrtOneMinusAlphasCumprod[t], 1e-14, "sqrt 1-alpha_bar");
            Close(Math.Log(1 - prod), s.LogOneMinusAlphasCumprod[t], 1e-14, "log 1-alpha_bar");
            Close(1 / Math.Sqrt(prod), s.SqrtRecipAlphasCumprod[t], 1e-13, "sqrt recip");
            Close(Math.Sqrt(1 / prod - 1), s.SqrtRecipm1AlphasCumprod[t], 1e-13, "sqrt recip m1");
        }
        // The paper's schedule ends near pure noise: alpha_bar_T is about 4e-5.
        if (kind == ScheduleKind.Linear) Assert.InRange(s.AlphasCumprod[999], 3e-5, 5e-5);
    }

    [Fact]
    public void CosineMatchesTheClosedFormWithItsClip()
    {
        const int T = 1000;
        const double sOff = 0.008;
        double F(double u) => Math.Pow(Math.Cos((u / T + sOff) / (1 + sOff) * Math.PI / 2), 2);
        var s = NoiseSchedule.Cosine(T);
        Assert.Equal(ScheduleKind.Cosine, s.Kind);
        int clipped = 0;
        for (int i = 0; i < T; i++)
        {
            double raw = 1 - F(i + 1) / F(i);
            double expected = Math.Min(raw, 0.999);
            if (raw > 0.999) clipped++;
            Close(expected, s.Betas[i], 1e-12, $"beta[{i}]");
            // Where no clip acted yet, alpha_bar follows f(t)/f(0).
            if (i < T - 1) Assert.True(Math.Abs(F(i + 1) / F(0) - s.AlphasCumprod[i]) <= 1e-10 * s.AlphasCumprod[i] + 1e-15, $"alpha_bar[{i}]");
        }
        Assert.True(clipped >= 1, "the last beta of the cosine schedule should be clipped at 0.999");
        Assert.Equal(0.999, s.Betas[T - 1]);
        Assert.True(s.Betas.All(b => b > 0 && b < 1));
    }

    [Fact]
    public void PosteriorQuantitiesMatchClosedForms()
    {
        foreach (var s in new[] { NoiseSchedule.Linear(1000), NoiseSchedule.Cosine(500) })
        {
            int T = s.Timesteps;
            double ab = 1.0;
            for (int t = 0; t < T; t++)
            {
                double b = s.Betas[t], abPrev = ab;
                ab *= 1 - b;
                double var = b * (1 - abPrev) / (1 - ab);
                double c1 = b * Math.Sqrt(abPrev) / (1 - ab);
                double c2 = (1 - abPrev) * Math.Sqrt(1 - b) / (1 - ab);
                Close(var, s.PosteriorVariance[t], 1e-12, $"posterior variance[{t}]");
                Close(c1, s.PosteriorMeanCoef1[t], 1e-12, $"coef1[{t}]");
                Close(c2, s.PosteriorMeanCoef2[t], 1e-12, $"coef2[{t}]");
                // Independent identities: averaging the posterior over x_t | x_0 gives back q(x_{t-1} | x_0).
                Close(Math.Sqrt(abPrev), c1 + c2 * Math.Sqrt(ab), 1e-12, $"mean identity[{t}]");
                Close(1 - abPrev, var + c2 * c2 * (1 - ab), 1e-12, $"variance identity[{t}]");
            }
            Assert.Equal(0.0, s.PosteriorVariance[0]);
            Close(1.0, s.PosteriorMeanCoef1[0], 1e-12, "coef1[0]");
            Assert.Equal(0.0, s.PosteriorMeanCoef2[0]);
            Assert.Equal(Math.Log(s.PosteriorVariance[1]), s.PosteriorLogVarianceClipped[0]);
            for (int t = 1; t < T; t++) Close(Math.Log(s.PosteriorVariance[t]), s.PosteriorLogVarianceClipped[t], 1e-14, "clipped log var");
        }
    }

    [Fact]
    public void OneAndFourThousandStepsWork()
    {
        var one = NoiseSchedule.Linear(1);
        Assert.Equal(new[] { 1e-4 }, one.Betas);
        Assert.Equal(Math.Log(1e-4), one.PosteriorLogVarianceClipped[0]);
        Assert.Equal(0.0, one.PosteriorVariance[0]);
        var oneCos = NoiseSchedule.Cosine(1);
        Assert.Equal(0.999, oneCos.Betas[0]);
        foreach (var kind in new[] { ScheduleKind.Linear, ScheduleKind.Cosine })
        {
            var s = NoiseSchedule.Create(kind, 4000);
            Assert.Equal(4000, s.Betas.Length);
            foreach (var arr in new[] { s.Betas, s.AlphasCumprod, s.PosteriorVariance, s.PosteriorLogVarianceClipped,
                         s.PosteriorMeanCoef1, s.PosteriorMeanCoef2, s.SqrtRecipm1AlphasCumprod, s.LogOneMinusAlphasCumprod })
            {
                Assert.Equal(4000, arr.Length);
                Assert.All(arr, v => Assert.True(double.IsFinite(v)));
            }
        }
    }

    [Fact]
    public void FourThousandLinearStepsKeepThePapersEndpoints()
    {
        // The project's linear schedule is linspace(1e-4, 0.02, T) for every T (README: --beta-start/--beta-end, defaults
        // 1e-4 and 0.02; improved DDPM's 1000/T rescaling is not applied), so beta_t = 1e-4 + t (0.02 - 1e-4) / 3999.
        var s = NoiseSchedule.Linear(4000);
        for (int t = 0; t < 4000; t++) Close(1e-4 + t * (0.02 - 1e-4) / 3999, s.Betas[t], 1e-15, $"beta[{t}]");
        // alpha_bar_t = prod_{i <= t} (1 - beta_i), computed with Python's decimal module at 50 digits:
        //   ab = Decimal(1); for i in range(4000): ab *= 1 - (Decimal('1e-4') + Decimal('0.0199') * i / 3999)
        // A float64 product of 4000 factors is good to about 4000 * 1.1e-16 relative; 1e-11 leaves a wide margin.
        var expected = new (int T, double AlphaBar)[]
        {
            (0, 9.99900000000000011e-01), (1, 9.99795034253563419e-01), (999, 7.50185710328209049e-02),
            (1999, 3.78575137445656473e-05), (2999, 1.25322990763739188e-10), (3999, 2.65323237182399520e-18),
        };
        foreach (var (t, ab) in expected)
            Assert.True(Math.Abs(s.AlphasCumprod[t] - ab) <= 1e-11 * ab, $"alpha_bar[{t}] = {s.AlphasCumprod[t]:R}, expected {ab:R}");
    }

    [Fact]
    public void FourThousandCosineStepsTelescopeToTheClosedForm()
    {
        // With f(u) = cos(((u / T) + 0.008) / 1.008 * pi / 2)^2, the product of 1 - beta_i = f(i + 1) / f(i) telescopes:
        // alpha_bar_t = f(t + 1) / f(0) wherever no beta was clipped at 0.999. Only the last one is (f(T) = 0, so
        // 1 - f(T) / f(T - 1) = 1); the one before is 1 - f(3999) / f(3998), about 3/4.
        const int T = 4000;
        static double F(int u) => Math.Pow(Math.Cos((u / (double)T + 0.008) / 1.008 * Math.PI / 2), 2);
        var s = NoiseSchedule.Cosine(T);
        Assert.Equal(0.999, s.Betas[T - 1]);
        Assert.InRange(s.Betas[T - 2], 0.7, 0.8);
        foreach (int t in new[] { 0, 1, 999, 1999, 2999, 3990, 3998 })
        {
            double expected = F(t + 1) / F(0);
            Assert.True(Math.Abs(s.AlphasCumprod[t] - expected) <= 1e-11 * expected, $"alpha_bar[{t}] = {s.AlphasCumprod[t]:R}, expected {expected:R}");
        }
        Close(F(T - 1) / F(0) * 0.001, s.AlphasCumprod[T - 1], 1e-11 * s.AlphasCumprod[T - 1], "alpha_bar[T - 1] after the clipped beta");
    }

    [Fact]
    public void FromBetasCopiesAndHasNoKind()
    {
        var betas = new[] { 0.1, 0.2, 0.3 };
        var s = NoiseSchedule.FromBetas(betas);
        betas[0] = 0.5;
        Assert.Null(s.Kind);
        Assert.Equal(new[] { 0.1, 0.2, 0.3 }, s.Betas);
        Close(0.9 * 0.8 * 0.7, s.AlphasCumprod[2], 1e-15, "alpha_bar");
    }

    public static IEnumerable<object[]> BadBetas() => new[]
    {
        new object[] { new double[0] },
        new object[] { new[] { 0.1, 1.0 } },
        new object[] { new[] { 0.1, 1.5 } },
        new object[] { new[] { 0.0, 0.1 } },
        new object[] { new[] { 0.1, -0.1 } },
        new object[] { new[] { 0.1, double.NaN } },
        new object[] { new[] { double.PositiveInfinity } },
    };

    [Theory]
    [MemberData(nameof(BadBetas))]
    public void InvalidBetasAreUserErrors(double[] betas)
    {
        var e = Assert.Throws<DdpmException>(() => NoiseSchedule.FromBetas(betas));
        Assert.DoesNotContain('\n', e.Message);
        Assert.False(string.IsNullOrWhiteSpace(e.Message));
    }

    [Fact]
    public void InvalidFactoryArgumentsAreUserErrors()
    {
        Assert.Contains("0 timesteps", Assert.Throws<DdpmException>(() => NoiseSchedule.Linear(0)).Message);
        Assert.Throws<DdpmException>(() => NoiseSchedule.Linear(-5));
        Assert.Throws<DdpmException>(() => NoiseSchedule.Cosine(0));
        Assert.Throws<DdpmException>(() => NoiseSchedule.Create(ScheduleKind.Linear, 0));
        Assert.Throws<DdpmException>(() => NoiseSchedule.Linear(10, betaEnd: 1.0));
        Assert.Throws<DdpmException>(() => NoiseSchedule.Linear(10, betaStart: 0.0));
        Assert.Throws<DdpmException>(() => NoiseSchedule.Linear(10, betaStart: double.NaN));
        Assert.Throws<DdpmException>(() => NoiseSchedule.Cosine(10, maxBeta: 1.0));
        Assert.Throws<DdpmException>(() => NoiseSchedule.Cosine(10, s: double.NaN));
        Assert.Throws<DdpmException>(() => NoiseSchedule.Create((ScheduleKind)42, 10));
        Assert.Throws<DdpmException>(() => NoiseSchedule.FromBetas(new[] { 1e-20 }));
    }

    [Fact]
    public void CsvRoundTripsBitIdentically()
    {
        var s = NoiseSchedule.Cosine(300);
        var lines = ScheduleTable.ToCsv(s).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("t,beta,alpha_bar,posterior_variance,posterior_log_variance_clipped,posterior_mean_coef1,posterior_mean_coef2", lines[0]);
        Assert.Equal(301, lines.Length);
        for (int t = 0; t < 300; t++)
        {
            var f = lines[t + 1].Split(',');
            Assert.Equal(7, f.Length);
            Assert.Equal(t, int.Parse(f[0], CultureInfo.InvariantCulture));
            double P(int i) => double.Parse(f[i], CultureInfo.InvariantCulture);
            Assert.Equal(BitConverter.DoubleToInt64Bits(s.Betas[t]), BitConverter.DoubleToInt64Bits(P(1)));
            Assert.Equal(BitConverter.DoubleToInt64Bits(s.AlphasCumprod[t]), BitConverter.DoubleToInt64Bits(P(2)));
            Assert.Equal(BitConverter.DoubleToInt64Bits(s.PosteriorVariance[t]), BitConverter.DoubleToInt64Bits(P(3)));
            Assert.Equal(BitConverter.DoubleToInt64Bits(s.PosteriorLogVarianceClipped[t]), BitConverter.DoubleToInt64Bits(P(4)));
            Assert.Equal(BitConverter.DoubleToInt64Bits(s.PosteriorMeanCoef1[t]), BitConverter.DoubleToInt64Bits(P(5)));
            Assert.Equal(BitConverter.DoubleToInt64Bits(s.PosteriorMeanCoef2[t]), BitConverter.DoubleToInt64Bits(P(6)));
        }
    }

    [Fact]
    public void JsonRoundTripsBitIdentically()
    {
        var s = NoiseSchedule.Linear(1000);
        using var doc = JsonDocument.Parse(ScheduleTable.ToJson(s));
        Assert.Equal(JsonValueKind.Array, doc.RootElement.ValueKind);
        Assert.Equal(1000, doc.RootElement.GetArrayLength());
        int t = 0;
        foreach (var row in doc.RootElement.EnumerateArray())
        {
            Assert.Equal(t, row.GetProperty("t").GetInt32());
            void Same(double expected, string name) =>
                Assert.Equal(BitConverter.DoubleToInt64Bits(expected), BitConverter.DoubleToInt64Bits(row.GetProperty(name).GetDouble()));
            Same(s.Betas[t], "beta");
            Same(s.AlphasCumprod[t], "alpha_bar");
            Same(s.PosteriorVariance[t], "posterior_variance");
            Same(s.PosteriorLogVarianceClipped[t], "posterior_log_variance_clipped");
            Same(s.PosteriorMeanCoef1[t], "posterior_mean_coef1");
            Same(s.PosteriorMeanCoef2[t], "posterior_mean_coef2");
            t++;
        }
    }
}

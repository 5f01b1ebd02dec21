using Ddpm.Diffusion;
using Ddpm.Pipelines;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Diffusion;

public class VariationalBoundTests
{
    private static readonly double Ln2 = Math.Log(2.0);

    private static void Near(double expected, double actual, double tol, string what) =>
        Assert.True(Math.Abs(expected - actual) <= tol, $"{what}: expected {expected:R}, got {actual:R} (tol {tol:R})");

    private static double[] D(Tensor x) => x.detach().to(ScalarType.Float64).cpu().contiguous().data<double>().ToArray();

    /// <summary>Phi(x) = 0.5 + integral_0^x of the normal density, by composite Simpson (error far below 1e-9 here).</summary>
    private static double Phi(double x)
    {
        const int n = 2000;
        double h = x / n, sum = 0;
        for (int i = 0; i <= n; i++)
        {
            double u = i * h, w = i == 0 || i == n ? 1 : i % 2 == 1 ? 4 : 2;
            sum += w * Math.Exp(-0.5 * u * u);
        }
        return 0.5 + sum * h / 3 / Math.Sqrt(2 * Math.PI);
    }

    private static double PhiApprox(double x) => 0.5 * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

    // ---- elementary formulas -----------------------------------------------------------------------------------

    [Fact]
    public void NormalKlMatchesTheTextbookForm()
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        var m1 = randn(50); var m2 = randn(50);
        var lv1 = randn(50); var lv2 = randn(50);
        var kl = D(VariationalBound.NormalKl(m1, lv1, m2, lv2));
        var a = D(m1); var b = D(m2); var v1 = D(lv1); var v2 = D(lv2);
        for (int i = 0; i < 50; i++)
        {
            // KL = ln(s2 / s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2
            double s1 = Math.Exp(0.5 * v1[i]), s2 = Math.Exp(0.5 * v2[i]);
            double expected = Math.Log(s2 / s1) + (s1 * s1 + (a[i] - b[i]) * (a[i] - b[i])) / (2 * s2 * s2) - 0.5;
            Near(expected, kl[i], 1e-5 * Math.Max(1, expected), $"KL {i}");
        }
        // Hand value: KL(N(1, 1) || N(0, 4)) = ln 2 + (1 + 1) / 8 - 1/2.
        var hand = VariationalBound.NormalKl(tensor(1f), tensor(0f), tensor(0f), tensor((float)Math.Log(4))).item<float>();
        Near(Math.Log(2) - 0.25, hand, 1e-6, "hand KL");
        Assert.Equal(0f, VariationalBound.NormalKl(tensor(0.3f), tensor(-2f), tensor(0.3f), tensor(-2f)).item<float>());
    }

    [Fact]
    public void ApproximateCdfIsSymmetricAndWithin2e4OfTheNormalCdf()
    {
        using var scope = NewDisposeScope();
        var xs = linspace(-6, 6, 241, dtype: ScalarType.Float64);
        var cdf = D(VariationalBound.ApproxStandardNormalCdf(xs));
        var x = D(xs);
        for (int i = 0; i < x.Length; i++)
        {
            Near(Phi(x[i]), cdf[i], 2e-4, $"Phi({x[i]})");
            Near(1 - cdf[x.Length - 1 - i], cdf[i], 1e-12, $"symmetry at {x[i]}");
        }
        Assert.Equal(0.5, D(VariationalBound.ApproxStandardNormalCdf(zeros(1, dtype: ScalarType.Float64)))[0]);
    }

    [Fact]
    public void DecoderMatchesTheBinMassByHandAndByIntegration()
    {
        using var scope = NewDisposeScope();
        // Interior bin at x = 2*100/255 - 1, mean 0.2 off, sd 0.3; edge bins at -1 and 1.
        double x = 2 * 100 / 255.0 - 1, mean = x - 0.2, sd = 0.3, h = 1 / 255.0;
        var xs = tensor(new[] { (float)x, -1f, 1f });
        var means = tensor(new[] { (float)mean, -0.9f, 0.95f });
        var logScales = full(3, (float)Math.Log(sd));
        var lp = D(VariationalBound.DiscretizedGaussianLogLikelihood(xs, means, logScales));

        double interior = PhiApprox((x + h - mean) / sd) - PhiApprox((x - h - mean) / sd);
        Near(Math.Log(interior), lp[0], 1e-5, "interior, hand");
        double exact = Phi((x + h - mean) / sd) - Phi((x - h - mean) / sd);
        Near(exact, Math.Exp(lp[0]), 4e-4, "interior, integral of the density");
        double low = PhiApprox((-1 + h - (-0.9f)) / sd);
        Near(Math.Log(low), lp[1], 1e-5, "left edge takes the whole left tail");
        Near(Phi((-1 + h - (-0.9f)) / sd), Math.Exp(lp[1]), 2e-4, "left edge, integral");
        double high = 1 - PhiApprox((1 - h - 0.95f) / sd);
        Near(Math.Log(high), lp[2], 1e-5, "right edge takes the whole right tail");
    }

    [Theory]
    [InlineData(0.0, 0.05)]
    [InlineData(-0.97, 0.01)]
    [InlineData(0.5, 0.4)]
    [InlineData(1.2, 0.2)]
    public void DecoderIsADistributionOverThe256Levels(double mean, double sd)
    {
        using var scope = NewDisposeScope();
        var levels = arange(256, dtype: ScalarType.Float32) * (2f / 255f) - 1f;
        var lp = VariationalBound.DiscretizedGaussianLogLikelihood(levels, full(256, (float)mean), full(256, (float)Math.Log(sd)));
        double total = D(lp).Sum(Math.Exp);
        Near(1.0, total, 1e-4, "sum of the bin masses");
    }

    [Fact]
    public void DecoderClampsTheProbabilityAt1e12()
    {
        using var scope = NewDisposeScope();
        var lp = VariationalBound.DiscretizedGaussianLogLikelihood(tensor(new[] { 0f }), tensor(new[] { 0.9f }), tensor(new[] { (float)Math.Log(1e-3) }));
        Near(Math.Log(1e-12), lp.item<float>(), 1e-4, "clamped log");
    }

    // ---- diffusion terms ---------------------------------------------------------------------------------------

    [Fact]
    public void PriorTermMatchesItsClosedForm()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(1000);
        using var d = new GaussianDiffusion(s);
        var x0 = tensor(new[] { 1f, -1f, 0.5f, 0f, 0.25f, -0.75f }).view(2, 3);
        var prior = D(d.PriorBpd(x0));
        double ab = s.AlphasCumprod[999];
        var v = D(x0);
        for (int i = 0; i < 2; i++)
        {
            double sum = 0;
            for (int j = 0; j < 3; j++)
                sum += 0.5 * (-1 - Math.Log(1 - ab) + (1 - ab) + ab * v[i * 3 + j] * v[i * 3 + j]);
            Near(sum / 3 / Ln2, prior[i], 1e-7, $"prior {i}");
        }
    }

    /// <summary>An eps-model whose x_0 prediction is exactly <paramref name="x0"/> whatever x_t is.</summary>
    private static FuncModel ExactModel(NoiseSchedule s, Tensor x0) => new((xt, t) =>
    {
        var ab = tensor(s.AlphasCumprod, dtype: ScalarType.Float64).gather(0, t).view(-1, 1, 1, 1);
        var eps = (xt.to(ScalarType.Float64) - ab.sqrt() * x0.to(ScalarType.Float64)) / (1 - ab).sqrt();
        return eps.to(ScalarType.Float32);
    });

    /// <summary>A fixed image on the 8-bit grid, including both edge levels.</summary>
    private static Tensor FixedImage(int n)
    {
        var levels = new long[] { 0, 255, 17, 128, 200, 64, 3, 250, 99, 180, 0, 255, 31, 77, 140, 222 };
        var one = tensor(levels.Select(k => (float)(2.0 * k / 255 - 1)).ToArray()).view(1, 1, 4, 4);
        return one.expand(n, 1, 4, 4).contiguous();
    }

    [Theory]
    [InlineData(VarianceType.FixedSmall)]
    [InlineData(VarianceType.FixedLarge)]
    public void ExactModelGivesPriorPlusDecoderPlusTheVarianceMismatch(VarianceType variance)
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(1000);
        using var d = new GaussianDiffusion(s, variance);
        var x0 = FixedImage(2);
        using var model = ExactModel(s, x0);
        using var terms = d.CalcBpdLoop(model, x0, seed: 5);
        int T = s.Timesteps;

        // KL terms: the means agree, so each is 0.5 (-1 + lv_model - lv_true + exp(lv_true - lv_model)) per dimension.
        double klSum = 0;
        for (int t = 1; t < T; t++)
        {
            double lvTrue = s.PosteriorLogVarianceClipped[t], lvModel = d.ModelLogVariance[t];
            klSum += 0.5 * (-1 + lvModel - lvTrue + Math.Exp(lvTrue - lvModel)) / Ln2;
        }
        if (variance == VarianceType.FixedSmall) Near(0.0, klSum, 1e-12, "fixedsmall has the posterior's variance");

        // Decoder: mean = x_0 (coef1 = 1, coef2 = 0 at t = 0), sd = exp(0.5 lv_model[0]).
        double sd = Math.Exp(0.5 * d.ModelLogVariance[0]), h = 1 / 255.0;
        var pixels = D(x0[0].flatten());
        double decoder = 0;
        foreach (var x in pixels)
        {
            double p = x < -0.999 || x > 0.999 ? PhiApprox(h / sd) : PhiApprox(h / sd) - PhiApprox(-h / sd);
            decoder += -Math.Log(p) / Ln2;
        }
        decoder /= pixels.Length;

        double ab = s.AlphasCumprod[T - 1], prior = 0;
        foreach (var x in pixels) prior += 0.5 * (-1 - Math.Log(1 - ab) + (1 - ab) + ab * x * x);
        prior /= pixels.Length * Ln2;

        var kl = D(terms.Kl); var dec = D(terms.Decoder); var pr = D(terms.Prior); var total = D(terms.Total);
        for (int i = 0; i < 2; i++)
        {
            Near(klSum, kl[i], 1e-4 + 1e-4 * klSum, $"sum of KL terms, image {i}");
            Near(decoder, dec[i], 1e-5 * decoder, $"decoder, image {i}");
            Near(prior, pr[i], 1e-7, $"prior, image {i}");
            Near(pr[i] + kl[i] + dec[i], total[i], 1e-12, $"total, image {i}");
        }
        Assert.Equal(new long[] { 2, T }, terms.Terms.shape);
        Assert.True(D(terms.X0Mse).Max() < 1e-8, "the model's x_0 is exact");
    }

    [Theory]
    [InlineData(VarianceType.Learned, -7.0)]
    [InlineData(VarianceType.LearnedRange, 0.3)]
    [InlineData(VarianceType.LearnedRange, -1.0)]
    public void LearnedVarianceBoundEqualsTheClosedForm(VarianceType variance, double value)
    {
        // The x_0 prediction is exact, the variance channels hold a constant: each KL is the variance mismatch alone and
        // the decoder is the bin mass of N(x_0, sigma_0^2), with log sigma_t^2 = value (Learned) or
        // frac log(beta_t) + (1 - frac) log(beta~_t), frac = (value + 1) / 2 (LearnedRange).
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(100, 1e-3, 0.2);
        using var d = new GaussianDiffusion(s, variance, loss: LossType.Vlb);
        var x0 = FixedImage(2);
        using var exact = ExactModel(s, x0);
        using var model = new FuncModel((xt, t) => cat(new[] { exact.call(xt, t), full_like(xt, (float)value) }, 1));
        using var terms = d.CalcBpdLoop(model, x0, seed: 2);
        double LogVar(int t) => variance == VarianceType.Learned ? value
            : (value + 1) / 2 * Math.Log(s.Betas[t]) + (1 - (value + 1) / 2) * s.PosteriorLogVarianceClipped[t];
        double klSum = 0;
        for (int t = 1; t < s.Timesteps; t++)
        {
            double lvq = s.PosteriorLogVarianceClipped[t], lvp = LogVar(t);
            klSum += 0.5 * (-1 + lvp - lvq + Math.Exp(lvq - lvp)) / Ln2;
        }
        double sd = Math.Exp(0.5 * LogVar(0)), h = 1 / 255.0, decoder = 0;
        var pixels = D(x0[0].flatten());
        foreach (var x in pixels)
        {
            double p = x < -0.999 || x > 0.999 ? PhiApprox(h / sd) : PhiApprox(h / sd) - PhiApprox(-h / sd);
            decoder += -Math.Log(Math.Max(p, 1e-12)) / Ln2;
        }
        decoder /= pixels.Length;
        var kl = D(terms.Kl); var dec = D(terms.Decoder);
        for (int i = 0; i < 2; i++)
        {
            Near(klSum, kl[i], 2e-4 * Math.Max(1, klSum), $"sum of KL terms, image {i}");
            Near(decoder, dec[i], 1e-4 * Math.Max(1, decoder), $"decoder, image {i}");
        }
        if (value == -1.0) Assert.True(Math.Abs(klSum) < 1e-12, "v = -1 is the posterior variance: no KL");
    }

    [Theory]
    [InlineData(VarianceType.FixedSmall)]
    [InlineData(VarianceType.FixedLarge)]
    public void GaussianDataWithTheBayesModelHasTheExpectedKlAtEachStep(VarianceType variance)
    {
        // x_0 ~ N(m, s^2) per dimension: given x_t, x_0 is Gaussian with
        // E = m + sqrt(ab) s^2 / (ab s^2 + 1 - ab) (x_t - sqrt(ab) m), Var = s^2 (1 - ab) / (ab s^2 + 1 - ab).
        // With the model predicting E, E[KL_t] = 0.5 (-1 + lv_p - lv_q + exp(lv_q - lv_p)) + coef1^2 Var / (2 sigma_t^2).
        using var scope = NewDisposeScope();
        const double m = 0.3, sdData = 0.5;
        var s = NoiseSchedule.Linear(100, 1e-3, 0.2);
        using var d = new GaussianDiffusion(s, variance);
        manual_seed(21);
        var x0 = randn(64, 1, 8, 8) * (float)sdData + (float)m;
        var abAll = tensor(s.AlphasCumprod, dtype: ScalarType.Float64);
        using var model = new FuncModel((xt, t) =>
        {
            var ab = abAll.gather(0, t).view(-1, 1, 1, 1);
            var x = xt.to(ScalarType.Float64);
            var mean = m + ab.sqrt() * sdData * sdData / (ab * sdData * sdData + 1 - ab) * (x - ab.sqrt() * m);
            return ((x - ab.sqrt() * mean) / (1 - ab).sqrt()).to(ScalarType.Float32);
        });
        using var terms = d.CalcBpdLoop(model, x0, seed: 3, clipDenoised: false);
        var byT = D(terms.Terms.mean(new long[] { 0 }));
        foreach (int t in new[] { 1, 2, 5, 20, 50, 99 })
        {
            double ab = s.AlphasCumprod[t];
            double varPost = sdData * sdData * (1 - ab) / (ab * sdData * sdData + 1 - ab);
            double lvq = s.PosteriorLogVarianceClipped[t], lvp = d.ModelLogVariance[t];
            double expected = (0.5 * (-1 + lvp - lvq + Math.Exp(lvq - lvp))
                               + s.PosteriorMeanCoef1[t] * s.PosteriorMeanCoef1[t] * varPost * 0.5 * Math.Exp(-lvp)) / Ln2;
            // 4096 dimensions: the mean-mismatch part is a chi-square average, relative sd sqrt(2 / 4096) = 2.2%.
            Near(expected, byT[t], 0.08 * expected, $"E[KL] at t = {t}");
        }
    }

    /// <summary>E[x_0 | x_t] under x_0 uniform on the 256 levels, as an eps-model.</summary>
    private static FuncModel UniformLevelsBayesModel(NoiseSchedule s)
    {
        var abAll = tensor(s.AlphasCumprod, dtype: ScalarType.Float64);
        var levels = arange(256, dtype: ScalarType.Float32) * (2f / 255f) - 1f;
        return new FuncModel((xt, t) =>
        {
            var shape = xt.shape;
            var ab = abAll.gather(0, t).view(-1, 1);
            var sqrtAb = ab.sqrt().to(ScalarType.Float32);
            var x = xt.view(shape[0], -1);
            var diff = x.unsqueeze(-1) - sqrtAb.unsqueeze(-1) * levels;
            var logw = -diff.square() / (2 * (1 - ab).to(ScalarType.Float32).unsqueeze(-1));
            var mean = (logw.softmax(-1) * levels).sum(new long[] { -1 });
            var x64 = x.to(ScalarType.Float64);
            return ((x64 - ab.sqrt() * mean.to(ScalarType.Float64)) / (1 - ab).sqrt()).view(shape).to(ScalarType.Float32);
        });
    }

    [Fact]
    public void UniformNoiseImagesCostAbout8BitsPerDim()
    {
        // Pixels uniform on 256 levels have an entropy of exactly 8 bits, so no model's bound is below 8 (up to the
        // tanh CDF). With the Bayes-optimal mean, fixedlarge (the right variance for isotropic data, Ho et al. 3.2)
        // sits just above 8; fixedsmall pays for its too-small variance in the KL terms only.
        using var scope = NewDisposeScope();
        // The linear schedule scaled to T = 250 as improved DDPM scales it (betas x 1000 / T), to keep the test quick.
        var s = NoiseSchedule.Linear(250, 4e-4, 0.08);
        using var large = new GaussianDiffusion(s, VarianceType.FixedLarge);
        using var small = new GaussianDiffusion(s, VarianceType.FixedSmall);
        using var gen = new Generator(9, CPU);
        var x0 = randint(0, 256, new long[] { 8, 1, 8, 8 }, generator: gen).to(ScalarType.Float32) * (2f / 255f) - 1f;
        using var model = UniformLevelsBayesModel(s);
        var l = LikelihoodEvaluator.Evaluate(large, model, x0, CPU, batchSize: 8, seed: 1);
        var m = LikelihoodEvaluator.Evaluate(small, model, x0, CPU, batchSize: 8, seed: 1);
        // 8.02 +- 0.07 (standard error over the 8 images) here; the expectation cannot be below 8.
        Assert.InRange(l.BitsPerDim.Mean, 8 - 3 * l.BitsPerDim.StandardError!.Value, 8.25);
        Assert.True(m.BitsPerDim.Mean > l.BitsPerDim.Mean + 0.1, $"fixedsmall {m.BitsPerDim.Mean} vs fixedlarge {l.BitsPerDim.Mean}");
        Near(l.Prior.Mean + l.Kl.Mean + l.Decoder.Mean, l.BitsPerDim.Mean, 1e-9, "parts add up");
        // Same noise and the same variance at t = 0: the decoder and prior terms agree exactly.
        Assert.Equal(l.Decoder, m.Decoder);
        Assert.Equal(l.Prior, m.Prior);
    }

    [Fact]
    public void EvaluatorAveragesTheLoopAndReportsTheStandardError()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(20, 1e-3, 0.3);
        using var d = new GaussianDiffusion(s, VarianceType.FixedSmall);
        using var gen = new Generator(4, CPU);
        var x0 = randint(0, 256, new long[] { 5, 1, 4, 4 }, generator: gen).to(ScalarType.Float32) * (2f / 255f) - 1f;
        using var model = new FuncModel((x, _) => 0.5f * x);
        var report = LikelihoodEvaluator.Evaluate(d, model, x0, CPU, batchSize: 5, seed: 17);
        using var terms = d.CalcBpdLoop(model, VariationalBound.QuantizeTo8Bit(x0), seed: 17);
        var total = D(terms.Total);
        Assert.Equal(total, report.PerImage);
        double mean = total.Average();
        double sd = Math.Sqrt(total.Sum(v => (v - mean) * (v - mean)) / 4);
        Near(mean, report.BitsPerDim.Mean, 1e-12, "mean");
        Near(sd / Math.Sqrt(5), report.BitsPerDim.StandardError!.Value, 1e-12, "standard error");
        Near(D(terms.Kl).Average(), report.Kl.Mean, 1e-12, "KL part");
        Assert.Equal(20, report.TermsByTimestep.Length);
        Near(D(terms.Terms.mean(new long[] { 0 }))[7], report.TermsByTimestep[7], 1e-12, "term at t = 7");

        // Batches draw their own noise (seed + b), so the result depends on the batch size but not on anything else.
        var again = LikelihoodEvaluator.Evaluate(d, model, x0, CPU, batchSize: 2, seed: 17);
        var twice = LikelihoodEvaluator.Evaluate(d, model, x0, CPU, batchSize: 2, seed: 17);
        Assert.Equal(again.PerImage, twice.PerImage);
        Assert.NotEqual(report.PerImage, again.PerImage);
        var back = NllReport.FromJson(report.ToJson());
        Assert.Equal(report.PerImage, back.PerImage);
        Assert.Equal(report.BitsPerDim, back.BitsPerDim);
    }

    [Fact]
    public void LoopRestoresTrainingModeAndHonoursCancellation()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(10);
        using var d = new GaussianDiffusion(s);
        using var model = FuncModel.Zero();
        model.train();
        var x0 = zeros(1, 1, 2, 2);
        var seen = new List<int>();
        using (d.CalcBpdLoop(model, x0, 0, progress: new Ddpm.Runtime.SyncProgress<int>(seen.Add))) { }
        Assert.True(model.training);
        Assert.Equal(Enumerable.Range(1, 10), seen);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.Throws<OperationCanceledException>(() => d.CalcBpdLoop(model, x0, 0, cancellationToken: cts.Token));
    }
}

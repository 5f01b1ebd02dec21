using Ddpm.Diffusion;
using Ddpm.Pipelines;
using static TorchSharp.torch;

namespace Ddpm.Tests.Diffusion;

/// <summary>
/// The bound <see cref="LikelihoodEvaluator.Evaluate(GaussianDiffusion, TorchSharp.torch.nn.Module{Tensor, Tensor, Tensor}, Tensor, Device, int, long, bool, IProgress{ValueTuple{int, int}}?, CancellationToken)"/>
/// reports for a model whose x_0 prediction is a fixed image c whatever x_t is, so no term depends on the noise:
/// every KL is 0.5 (-1 + lv_p - lv_q + exp(lv_q - lv_p) + coef1_t^2 (x_0 - clip(c))^2 exp(-lv_p)), the decoder is the bin
/// mass of N(clip(c), sigma_0^2) (coef1_0 = 1, coef2_0 = 0), the prior is KL(N(sqrt(ab_T) x_0, 1 - ab_T) || N(0, 1)).
/// All of them are recomputed by <see cref="HandBound"/> in float64 from the formulas, schedule included.
/// </summary>
public class BoundByHandTests
{
    // Two 2x2 images on the 8-bit grid (both edge levels included) and the model's x_0: one pixel (1.5) outside
    // [-1, 1], so the evaluation's clipping to 1 is exercised.
    private static readonly int[][] Levels = { new[] { 0, 255, 100, 180 }, new[] { 30, 128, 220, 64 } };
    private static readonly double[] PredictedX0 = { -0.2, 1.5, 0.1, 0.5 };

    private static double[] Pixels(int[] levels) => levels.Select(k => (double)(float)(2.0 * k / 255 - 1)).ToArray();

    /// <summary>An eps-model that implies x_0 = c: eps = (x_t - sqrt(ab_t) c) / sqrt(1 - ab_t), computed in float64.</summary>
    private static FuncModel ConstantX0Model(double[] alphaBar) => new((xt, t) =>
    {
        var ab = tensor(alphaBar, dtype: ScalarType.Float64).gather(0, t).view(-1, 1, 1, 1);
        var c = tensor(PredictedX0, dtype: ScalarType.Float64).view(1, 1, 2, 2);
        return ((xt.to(ScalarType.Float64) - ab.sqrt() * c) / (1 - ab).sqrt()).to(ScalarType.Float32);
    });

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EvaluateReportsTheHandComputedBound(bool fixedLarge)
    {
        using var scope = NewDisposeScope();
        const int T = 6;
        var betas = HandBound.Linear(T, 0.01, 0.3);
        var hand = new HandBound(betas, fixedLarge);
        var schedule = NoiseSchedule.Linear(T, 0.01, 0.3);
        using var diffusion = new GaussianDiffusion(schedule, fixedLarge ? VarianceType.FixedLarge : VarianceType.FixedSmall);
        using var model = ConstantX0Model(Enumerable.Range(0, T).Select(hand.AlphaBar).ToArray());
        var images = tensor(Levels.SelectMany(l => Pixels(l).Select(v => (float)v)).ToArray()).view(2, 1, 2, 2);

        var report = LikelihoodEvaluator.Evaluate(diffusion, model, images, CPU, batchSize: 1, seed: 3);

        var clipped = PredictedX0.Select(v => Math.Clamp(v, -1, 1)).ToArray();
        var perImage = new double[2];
        var byT = new double[T];
        double prior = 0, kl = 0, decoder = 0;
        for (int i = 0; i < 2; i++)
        {
            var x0 = Pixels(Levels[i]);
            double p = hand.Prior(x0);
            // x_t does not enter (coef2 x_t cancels in the KL's mean difference; coef2_0 = 0): any value will do.
            var terms = Enumerable.Range(0, T).Select(t => hand.Term(t, x0, new double[4], clipped)).ToArray();
            perImage[i] = p + terms.Sum();
            for (int t = 0; t < T; t++) byT[t] += terms[t] / 2;
            prior += p / 2;
            kl += terms.Skip(1).Sum() / 2;
            decoder += terms[0] / 2;
        }
        // The library runs the model and the posterior in float32: x_0 is recovered from eps to about 1e-7, so each
        // term agrees to a relative 1e-5 (the terms are 0.1 to 60 bits/dim here).
        var failures = new List<string>();
        void Near(double expected, double actual, string what)
        {
            if (!(Math.Abs(expected - actual) <= 1e-5 * Math.Max(1, Math.Abs(expected)))) failures.Add($"{what}: expected {expected:R}, got {actual:R}");
        }
        for (int i = 0; i < 2; i++) Near(perImage[i], report.PerImage[i], $"bound of image {i}");
        for (int t = 0; t < T; t++) Near(byT[t], report.TermsByTimestep[t], $"term at t = {t}");
        Near(prior, report.Prior.Mean, "prior");
        Near(kl, report.Kl.Mean, "KL terms");
        Near(decoder, report.Decoder.Mean, "decoder");
        Near(perImage.Average(), report.BitsPerDim.Mean, "bits/dim");
        // Standard error of two values: sample sd / sqrt 2 = |a - b| / sqrt 2 / sqrt 2 = |a - b| / 2.
        Near(Math.Abs(perImage[0] - perImage[1]) / 2, report.BitsPerDim.StandardError!.Value, "standard error");
        Assert.Equal(4, report.Dims);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}

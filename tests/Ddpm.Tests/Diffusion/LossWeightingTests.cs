using Ddpm.Diffusion;
using static TorchSharp.torch;

namespace Ddpm.Tests.Diffusion;

public class LossWeightingTests
{
    private static double Snr(NoiseSchedule s, int t) => s.AlphasCumprod[t] / (1 - s.AlphasCumprod[t]);

    [Fact]
    public void MinSnrOnEpsIsOneBelowGammaAndGammaOverSnrAbove()
    {
        var s = NoiseSchedule.Linear(1000);
        var table = LossWeighting.Of(LossWeightingKind.MinSnr).Table(s, PredictionType.Epsilon)!;
        int below = 0, above = 0;
        for (int t = 0; t < 1000; t++)
        {
            double snr = Snr(s, t);
            if (snr <= 5) { Assert.Equal(1.0, table[t]); below++; }
            else { Assert.Equal(5.0 / snr, table[t], 12); above++; }
        }
        // The linear schedule crosses SNR 5 early: both branches are exercised.
        Assert.True(below > 500 && above > 10, $"{below} below, {above} above");
    }

    [Fact]
    public void P2OnEpsIsOneOverOnePlusSnrToTheGamma()
    {
        var s = NoiseSchedule.Cosine(200);
        var table = LossWeighting.Of(LossWeightingKind.P2, 0.5).Table(s, PredictionType.Epsilon)!;
        for (int t = 0; t < 200; t += 7)
            Assert.Equal(1.0 / Math.Sqrt(1 + Snr(s, t)), table[t], 12);
        Assert.Null(LossWeighting.None.Table(s, PredictionType.Epsilon));
    }

    [Theory]
    [InlineData(LossWeightingKind.MinSnr)]
    [InlineData(LossWeightingKind.P2)]
    public void EveryTargetWeighsTheSameX0Error(LossWeightingKind kind)
    {
        // A model whose x_0 estimate is x_0 + d, written in each target: the weighted losses must all equal
        // w_x0(t) |d|^2 with w_x0 = min(SNR, gamma) (min-SNR) or SNR / (1 + SNR)^gamma (P2), whatever is predicted.
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(1000);
        manual_seed(3);
        var x0 = randn(5, 1, 4, 4);
        var noise = randn(5, 1, 4, 4);
        var d = 0.1 * randn(5, 1, 4, 4);
        var t = tensor(new long[] { 0, 20, 150, 600, 999 });
        var weighting = LossWeighting.Of(kind);
        var losses = new List<float[]>();
        foreach (var prediction in new[] { PredictionType.Epsilon, PredictionType.StartX, PredictionType.Velocity })
        {
            using var diffusion = new GaussianDiffusion(s, VarianceType.FixedLarge, prediction, LossType.Simple, weighting: weighting);
            using var model = new FuncModel((xt, tt) =>
            {
                var x0Hat = x0 + d;
                var eps = diffusion.PredictEpsFromX0(xt, tt, x0Hat);
                return prediction switch
                {
                    PredictionType.Epsilon => eps,
                    PredictionType.StartX => x0Hat,
                    _ => diffusion.VelocityFrom(x0Hat, tt, eps),
                };
            });
            losses.Add(TensorData.Floats(diffusion.TrainingLosses(model, x0, t, noise)));
        }
        var dd = TensorData.Floats(d.square().mean(new long[] { 1, 2, 3 }));
        long[] ts = [0, 20, 150, 600, 999];
        for (int i = 0; i < ts.Length; i++)
        {
            double snr = Snr(s, (int)ts[i]);
            double onX0 = kind == LossWeightingKind.MinSnr ? Math.Min(snr, 5) : snr / (1 + snr);
            double expected = onX0 * dd[i];
            foreach (var l in losses) Assert.Equal(expected, l[i], Math.Max(1e-5, 1e-4 * expected));
        }
    }

    [Fact]
    public void UnweightedLossIsUnchangedAndWeightedIsTheMseTimesTheTable()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(100);
        using var plain = new GaussianDiffusion(s);
        using var weighted = new GaussianDiffusion(s, weighting: LossWeighting.Of(LossWeightingKind.MinSnr, 2));
        manual_seed(1);
        var x0 = randn(4, 3);
        var noise = randn(4, 3);
        var t = tensor(new long[] { 0, 5, 50, 99 });
        using var model = new FuncModel((x, _) => 0.5f * x);
        var terms = weighted.TrainingLossTerms(model, x0, t, noise);
        var mse = TensorData.Floats(plain.TrainingLosses(model, x0, t, noise));
        Assert.Equal(mse, TensorData.Floats(terms.Mse!));
        var table = weighted.Weighting.Table(s, PredictionType.Epsilon)!;
        var loss = TensorData.Floats(terms.Loss);
        long[] ts = [0, 5, 50, 99];
        for (int i = 0; i < 4; i++) Assert.Equal((float)table[ts[i]] * mse[i], loss[i]);
    }

    [Fact]
    public void WeightingsThatCannotApplyAreRefusedNamingTheSetting()
    {
        var s = NoiseSchedule.Linear(10);
        var e = Assert.Throws<DdpmException>(() => new GaussianDiffusion(s, prediction: PredictionType.Mean, weighting: LossWeighting.Of(LossWeightingKind.MinSnr)));
        Assert.Equal("loss_weighting", e.Setting);
        e = Assert.Throws<DdpmException>(() => new GaussianDiffusion(s, VarianceType.LearnedRange, loss: LossType.Vlb, weighting: LossWeighting.Of(LossWeightingKind.P2)));
        Assert.Equal("loss_weighting", e.Setting);
        e = Assert.Throws<DdpmException>(() => new GaussianDiffusion(s, weighting: new LossWeighting(LossWeightingKind.MinSnr, 0)));
        Assert.Equal("loss_weight_gamma", e.Setting);
    }
}

using Ddpm.Diffusion;
using Ddpm.Sampling;
using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Tests.Diffusion;

public class SigmoidScheduleTests
{
    private static double Sig(double x) => 1 / (1 + Math.Exp(-x));

    [Fact]
    public void TwoStepsByHand()
    {
        // g(0) = 1, g(1/2) = (sig(3) - sig(0)) / (sig(3) - sig(-3)) = 1/2 by symmetry, g(1) = 0.
        var s = NoiseSchedule.Sigmoid(2);
        Assert.Equal(0.5, s.Betas[0], 14);
        Assert.Equal(0.999, s.Betas[1]);
        Assert.Equal(ScheduleKind.Sigmoid, s.Kind);
    }

    [Fact]
    public void AlphaBarFollowsTheNormalisedSigmoid()
    {
        const int T = 1000;
        var s = NoiseSchedule.Sigmoid(T);
        double vs = Sig(-3), ve = Sig(3);
        for (int t = 0; t < T - 1; t++)
        {
            double u = (t + 1.0) / T;
            double expected = (ve - Sig(u * 6 - 3)) / (ve - vs);
            Assert.True(Math.Abs(expected - s.AlphasCumprod[t]) <= 1e-12 + 1e-9 * expected, $"alpha_bar at t = {t}");
        }
        Assert.Equal(0.999, s.Betas[T - 1]);
        for (int t = 1; t < T; t++) Assert.True(s.Betas[t] > s.Betas[t - 1], "betas increase");
        Assert.Equal(ScheduleKind.Sigmoid, DiffusionFactory.ParseSchedule("sigmoid"));
    }

    [Theory]
    [InlineData("linear")]
    [InlineData("cosine")]
    [InlineData("sigmoid")]
    public void FourThousandStepsWorkWithTheAncestralSampler(string schedule)
    {
        var c = new TrainConfig { Schedule = schedule, Timesteps = 4000 };
        var s = DiffusionFactory.Schedule(c);
        Assert.Equal(4000, s.Timesteps);
        Assert.True(s.AlphasCumprod[3999] > 0 && s.AlphasCumprod[3999] < 1e-3);
        using var d = new GaussianDiffusion(s, VarianceType.FixedSmall);
        using var model = FuncModel.Zero();
        var seen = 0;
        using var result = AncestralSampler.Sample(d, model, new long[] { 2, 1, 2, 2 }, new SamplerOptions { Seed = 1 },
            progress: new Ddpm.Runtime.SyncProgress<int>(k => seen = k));
        Assert.Equal(4000, seen);
        Assert.True(result.Samples.isfinite().all().item<bool>());
        Assert.True(result.Samples.abs().max().item<float>() <= 1.05f);
    }
}

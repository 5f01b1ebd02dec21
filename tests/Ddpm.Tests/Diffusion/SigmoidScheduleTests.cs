using Ddpm.Tests.Sampling;
using Ddpm.Configuration;
using Ddpm.Diffusion;
using Ddpm.Runs;
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
        Assert.Equal(ScheduleKind.Sigmoid, SettingNames.Schedule.Parse("sigmoid"));
    }

    /// <summary>The three schedules' betas at T from their closed forms (reference.md section 1), in float64.</summary>
    private static double[] Betas(string schedule, int T)
    {
        static double Cos2(double u) => Math.Pow(Math.Cos((u + 0.008) / 1.008 * Math.PI / 2), 2);
        double G(double u) => (Sig(3) - Sig(u * 6 - 3)) / (Sig(3) - Sig(-3));
        return schedule switch
        {
            "linear" => HandBound.Linear(T, 1e-4, 0.02),
            "cosine" => Enumerable.Range(0, T).Select(i => Math.Min(1 - Cos2((i + 1.0) / T) / Cos2((double)i / T), 0.999)).ToArray(),
            _ => Enumerable.Range(0, T).Select(i => Math.Min(1 - G((i + 1.0) / T) / G((double)i / T), 0.999)).ToArray(),
        };
    }

    [Theory]
    [InlineData("linear")]
    [InlineData("cosine")]
    [InlineData("sigmoid")]
    public void FourThousandStepsOfAZeroModelFollowTheClosedFormRecurrence(string schedule)
    {
        // With eps_theta = 0 the predicted x_0 is x_t / sqrt(ab_t), clipped to [-1, 1], so given the noise each step is
        // x_{t-1} = coef1_t clip(x_t / sqrt(ab_t)) + coef2_t x_t + [t > 0] sigma_t z_t (fixedsmall: sigma_t^2 = the
        // clipped posterior variance). The sampler's noise is documented: a CPU generator seeded with the seed draws x_T,
        // then one N(0, I) per step. The test draws the same tensors and runs the recurrence in float64 with its own
        // schedule (HandBound, betas from the closed forms).
        const int T = 4000;
        var c = new TrainConfig { Schedule = SettingNames.Schedule.Parse(schedule), Timesteps = T };
        var s = DiffusionFactory.Schedule(c);
        Assert.Equal(T, s.Timesteps);
        using var d = new GaussianDiffusion(s, VarianceType.FixedSmall);
        using var model = FuncModel.Zero();
        var seen = 0;
        var shape = new long[] { 2, 1, 2, 2 };
        using var result = TestSampling.Ancestral(d, model, shape, new SampleOptions { Seed = 1 },
            progress: new Ddpm.Runtime.SyncProgress<int>(k => seen = k));
        Assert.Equal(T, seen);

        var hand = new HandBound(Betas(schedule, T), fixedLarge: false);
        using var gen = new Generator(1, CPU);
        double[] Draw()
        {
            using var z = randn(shape, dtype: ScalarType.Float32, generator: gen);
            return z.data<float>().Select(v => (double)v).ToArray();
        }
        var x = Draw();
        for (int t = T - 1; t >= 0; t--)
        {
            var z = Draw();
            double sqrtAb = Math.Sqrt(hand.AlphaBar(t)), sigma = Math.Exp(0.5 * hand.ModelLogVariance(t));
            x = x.Select((v, i) => hand.Coef1(t) * Math.Clamp(v / sqrtAb, -1, 1) + hand.Coef2(t) * v + (t > 0 ? sigma * z[i] : 0)).ToArray();
        }
        var got = result.Samples.data<float>().ToArray();
        // The sampler steps in float32 (about 6e-8 relative per operation); over 4000 steps the values, of order 1,
        // drift by far less than 1e-4.
        for (int i = 0; i < x.Length; i++)
            Assert.True(Math.Abs(x[i] - got[i]) < 1e-4, $"{schedule}, element {i}: expected {x[i]:R}, got {got[i]:R}");
        // The last step's mean is clip(x_0 / sqrt(ab_0)) (coef1_0 = 1, coef2_0 = 0): every sample lies in [-1, 1].
        Assert.True(result.Samples.abs().max().item<float>() <= 1f);
    }
}

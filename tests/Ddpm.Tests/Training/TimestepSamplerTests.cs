using System.Text.Json;
using Ddpm.Runs;
using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

public class TimestepSamplerTests
{
    private static long[] Longs(Tensor x) => x.data<long>().ToArray();

    private static void Feed(LossAwareTimestepSampler s, int t, params double[] losses)
    {
        foreach (var l in losses)
            s.Update(tensor(new long[] { t }), tensor(new[] { (float)l }));
    }

    [Fact]
    public void BeforeWarmUpItDrawsExactlyAsTheUniformSampler()
    {
        var lossAware = new LossAwareTimestepSampler(50);
        var uniform = new UniformTimestepSampler(50);
        using var g1 = new Generator(3, CPU);
        using var g2 = new Generator(3, CPU);
        var (a, wa) = lossAware.Sample(16, g1);
        var (b, wb) = uniform.Sample(16, g2);
        Assert.Equal(Longs(b), Longs(a));
        Assert.Null(wa);
        Assert.Null(wb);
        Assert.False(lossAware.WarmedUp);
    }

    [Fact]
    public void ProbabilitiesFollowTheRootMeanSquareOfTheLast10Losses()
    {
        var s = new LossAwareTimestepSampler(4);
        // t = 0..3: losses whose root mean square is 1, 2, 3 and 4 over the last 10 (t = 3 gets two older values first).
        for (int t = 0; t < 3; t++) Feed(s, t, Enumerable.Repeat((double)(t + 1), 10).ToArray());
        Feed(s, 3, 100, 100);
        Assert.False(s.WarmedUp);
        Assert.Equal(new[] { 0.25, 0.25, 0.25, 0.25 }, s.Probabilities());
        Feed(s, 3, 4, -4, 4, -4, 4, -4, 4);
        Assert.False(s.WarmedUp); // t = 3 has 9 losses
        Feed(s, 3, -4);
        Assert.True(s.WarmedUp);
        // Its 10 losses are 100, 100, 4, -4, ...: rms sqrt((2 * 100^2 + 8 * 16) / 10).
        var p = s.Probabilities();
        double r3 = Math.Sqrt((2 * 10000 + 8 * 16) / 10.0), sum = 1 + 2 + 3 + r3;
        Assert.Equal(r3 / sum * 0.999 + 0.001 / 4, p[3], 12);
        Assert.Equal(1 / sum * 0.999 + 0.001 / 4, p[0], 12);
    }

    [Fact]
    public void WarmedUpProbabilitiesMixInTheUniform()
    {
        var s = new LossAwareTimestepSampler(4);
        for (int t = 0; t < 3; t++) Feed(s, t, Enumerable.Repeat((double)(t + 1), 10).ToArray());
        Feed(s, 3, 100, 100);
        Feed(s, 3, 4, -4, 4, -4, 4, -4, 4, -4, 4, -4); // pushes the two 100s out: only the last 10 count
        Assert.True(s.WarmedUp);
        var p = s.Probabilities();
        for (int t = 0; t < 4; t++)
            Assert.Equal((t + 1) / 10.0 * 0.999 + 0.001 / 4, p[t], 12);
        Assert.Equal(1.0, p.Sum(), 12);

        // The draws' frequencies and weights are checked against these p_t in TimestepDrawFrequencyTests (chi-square).
    }

    [Fact]
    public void StateRoundTripsThroughJsonAndContinuesIdentically()
    {
        var s = new LossAwareTimestepSampler(3);
        var rng = new Random(5);
        for (int t = 0; t < 3; t++) Feed(s, t, Enumerable.Range(0, 10 + t).Select(_ => rng.NextDouble() * Math.PI).ToArray());
        var json = JsonSerializer.Serialize(s.GetState(), TrainConfig.Json);
        var back = new LossAwareTimestepSampler(3);
        back.SetState(JsonSerializer.Deserialize<TimestepSamplerState>(json, TrainConfig.Json)!, "test");
        Assert.Equal(s.Probabilities(), back.Probabilities());
        using var g1 = new Generator(8, CPU);
        using var g2 = new Generator(8, CPU);
        Assert.Equal(Longs(s.Sample(32, g1).T), Longs(back.Sample(32, g2).T));
        Assert.Throws<DdpmException>(() => new LossAwareTimestepSampler(4).SetState(s.GetState(), "test"));
    }
}

using Ddpm.Diffusion;
using Ddpm.Sampling;
using Ddpm.Tests.Diffusion;
using static TorchSharp.torch;

namespace Ddpm.Tests.Sampling;

public class SamplerSettingsTests
{
    [Fact]
    public void DefaultsPerSampler()
    {
        var s = NoiseSchedule.Linear(1000);
        Assert.Equal(Enumerable.Range(0, 1000), new SamplerSettings().ResolveTimesteps(s));
        Assert.Equal(TimestepSelection.EvenlySpaced(1000, 50), new SamplerSettings { Kind = SamplerKind.Ddim }.ResolveTimesteps(s));
        Assert.Equal(TimestepSelection.LogSnrSpaced(s, 20), new SamplerSettings { Kind = SamplerKind.DpmSolver }.ResolveTimesteps(s));
        Assert.Equal(TimestepSelection.EvenlySpaced(1000, 20),
            new SamplerSettings { Kind = SamplerKind.DpmSolver, Spacing = TimestepSpacing.Even }.ResolveTimesteps(s));
        Assert.Equal(new[] { 0, 5, 9 }, new SamplerSettings { Kind = SamplerKind.Ddim, Timesteps = new[] { 9, 0, 5 } }.ResolveTimesteps(s));
        // Fewer than the default steps in the schedule: all of them.
        Assert.Equal(12, new SamplerSettings { Kind = SamplerKind.DpmSolver }.ResolveTimesteps(NoiseSchedule.Linear(12)).Length);
        Assert.Equal("ddim, 50 of 1000 steps (even), eta 0.5", new SamplerSettings { Kind = SamplerKind.Ddim, Eta = 0.5 }.Describe(s));
        Assert.Equal(SamplerKind.DpmSolver, SamplerSettings.ParseKind("DPM-Solver"));
        Assert.Equal(SamplerKind.Ddim, SamplerSettings.ParseKind(" ddim "));
    }

    [Theory]
    [InlineData(SamplerKind.Ddpm, 1001, null, 0.0)]
    [InlineData(SamplerKind.Ddim, 0, null, 0.0)]
    [InlineData(SamplerKind.Ddim, null, null, -0.5)]
    [InlineData(SamplerKind.Ddpm, null, null, 0.5)]
    [InlineData(SamplerKind.DpmSolver, null, null, 1.0)]
    [InlineData(SamplerKind.Ddim, 10, "0,5", 0.0)]
    [InlineData(SamplerKind.Ddim, null, "0,1000", 0.0)]
    public void ImpossibleSettingsAreOneLineUserErrors(SamplerKind kind, int? steps, string? list, double eta)
    {
        var settings = new SamplerSettings { Kind = kind, Steps = steps, Eta = eta, Timesteps = list?.Split(',').Select(int.Parse).ToArray() };
        var e = Assert.Throws<DdpmException>(() => settings.ResolveTimesteps(NoiseSchedule.Linear(1000)));
        Assert.DoesNotContain('\n', e.Message);
        Assert.NotNull(e.Setting); // names the setting, which the CLI prints as its flag
        Assert.StartsWith(e.Setting, e.Message);
        Assert.Throws<DdpmException>(() => SamplerSettings.ParseKind("euler"));
        Assert.Throws<DdpmException>(() => SamplerSettings.ParseSpacing("karras"));
    }

    /// <summary>
    /// T = 4000 (improved DDPM's longest) with every sampler (the ancestral one respaced to 200 steps; over all T it is
    /// the plain loop of AncestralSamplerTests), linear (rescaled as improved-diffusion does) and cosine:
    /// with the optimal model of Gaussian data the samples must have the data's mean and std.
    /// </summary>
    [Theory]
    [InlineData(ScheduleKind.Linear)]
    [InlineData(ScheduleKind.Cosine)]
    public void EverySamplerHandlesFourThousandSteps(ScheduleKind kind)
    {
        const int T = 4000;
        var s = kind == ScheduleKind.Linear ? NoiseSchedule.Linear(T, 1e-4 * 1000 / T, 0.02 * 1000 / T) : NoiseSchedule.Cosine(T);
        using var d = new GaussianDiffusion(s, VarianceType.FixedSmall);
        var data = new GaussianData(s, 0.2, 0.3);
        using var model = data.Model();
        var all = new List<string>();
        foreach (var settings in new[]
        {
            new SamplerSettings { Kind = SamplerKind.Ddpm, Steps = 200 },
            new SamplerSettings { Kind = SamplerKind.Ddim, Steps = 100, Eta = 1.0 },
            new SamplerSettings { Kind = SamplerKind.Ddim },
            new SamplerSettings { Kind = SamplerKind.DpmSolver },
        })
        {
            using var r = Sampler.Sample(d, model, new long[] { 2000, 1 }, settings, new SamplerOptions { Seed = 1, Threshold = X0Threshold.None });
            double mean = r.Samples.mean().item<float>(), std = r.Samples.std().item<float>();
            string line = $"{settings.Describe(s)}: mean {mean:F4}, std {std:F4}";
            all.Add(line);
            // Sampling error of 2000 draws: 0.3 / sqrt(2000) = 0.007 for the mean, 0.005 for the std; the deterministic
            // samplers also carry x_T's own sample std (3 % off for this seed) into theirs.
            Assert.True(Math.Abs(mean - 0.2) < 0.025, string.Join("; ", all));
            Assert.True(Math.Abs(std - 0.3) < 0.03, string.Join("; ", all));
        }
    }
}

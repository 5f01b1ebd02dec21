using Ddpm.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Models;

public class PresetsTests
{
    // Independent closed-form parameter counts, written from the paper's architecture.
    private static long Conv(long i, long o, long k) => i * o * k * k + o;
    private static long Dense(long i, long o) => i * o + o;
    private static long Gn(long c) => 2 * c;
    private static long Res(long i, long o, long temb) =>
        Gn(i) + Conv(i, o, 3) + Dense(temb, o) + Gn(o) + Conv(o, o, 3) + (i == o ? 0 : Conv(i, o, 1));
    private static long Attn(long c) => Gn(c) + 4 * Conv(c, c, 1);

    private static long HoCifar10ByHand()
    {
        const long t = 512; // 4 x 128
        long temb = Dense(128, 512) + Dense(512, 512);
        long down = Conv(3, 128, 3)
            + 2 * Res(128, 128, t) + Conv(128, 128, 3)                               // 32x32
            + Res(128, 256, t) + Res(256, 256, t) + 2 * Attn(256) + Conv(256, 256, 3) // 16x16, attention
            + 2 * Res(256, 256, t) + Conv(256, 256, 3)                               // 8x8
            + 2 * Res(256, 256, t);                                                  // 4x4
        long mid = 2 * Res(256, 256, t) + Attn(256);
        long up = 3 * Res(512, 256, t) + Conv(256, 256, 3)                            // 4x4: skips 256, 256, 256
            + 3 * Res(512, 256, t) + Conv(256, 256, 3)                                // 8x8: skips 256, 256, 256
            + 2 * Res(512, 256, t) + Res(384, 256, t) + 3 * Attn(256) + Conv(256, 256, 3) // 16x16: skips 256, 256, 128
            + Res(384, 128, t) + 2 * Res(256, 128, t);                                // 32x32: skips 128, 128, 128
        long output = Gn(128) + Conv(128, 3, 3);
        return temb + down + mid + up + output;
    }

    // Shared by mnist-small (1 channel), cifar-small (3 channels) and mnist-tiny (1 channel, c = 16): ch c, mult 1,2,2,
    // 1 res block, attention at the lowest level.
    private static long SmallByHand(long channels, long c = 32)
    {
        long t = 4 * c;
        long temb = Dense(c, t) + Dense(t, t);
        long down = Conv(channels, c, 3)
            + Res(c, c, t) + Conv(c, c, 3)
            + Res(c, 2 * c, t) + Conv(2 * c, 2 * c, 3)
            + Res(2 * c, 2 * c, t) + Attn(2 * c);
        long mid = 2 * Res(2 * c, 2 * c, t) + Attn(2 * c);
        long up = 2 * Res(4 * c, 2 * c, t) + 2 * Attn(2 * c) + Conv(2 * c, 2 * c, 3) // skips 2c, 2c
            + Res(4 * c, 2 * c, t) + Res(3 * c, 2 * c, t) + Conv(2 * c, 2 * c, 3)      // skips 2c, c
            + Res(3 * c, c, t) + Res(2 * c, c, t);                                    // skips c, c
        return temb + down + mid + up + Gn(c) + Conv(c, channels, 3);
    }

    [Fact]
    public void HoCifar10HasThePapersParameterCount()
    {
        long hand = HoCifar10ByHand();
        Assert.Equal(35_746_307L, hand);
        Assert.Equal(35.7, Math.Round(hand / 1e6, 1));
        Assert.Equal(hand, ModelStats.CountParameters(Presets.Get("ho-cifar10")));
        using var m = new UNet(Presets.Get("ho-cifar10"));
        Assert.Equal(hand, ModelStats.CountParameters(m));
    }

    [Fact]
    public void SmallPresetsMatchHandCounts()
    {
        foreach (var (name, channels, width) in new[] { ("mnist-small", 1, 32), ("cifar-small", 3, 32), ("mnist-tiny", 1, 16) })
        {
            using var m = new UNet(Presets.Get(name));
            Assert.Equal(SmallByHand(channels, width), ModelStats.CountParameters(m));
            Assert.Equal(SmallByHand(channels, width), ModelStats.CountParameters(m.Config));
        }
    }

    [Fact]
    public void EveryPresetBuildsWithFiniteParametersAndUnitGroupNorms()
    {
        foreach (var name in Presets.Names)
        {
            using var scope = NewDisposeScope();
            var config = Presets.Get(name);
            using var m = new UNet(config);
            long count = 0;
            foreach (var (pname, p) in m.named_parameters())
            {
                Assert.True(isfinite(p).all().item<bool>(), $"{name}: {pname} has non-finite values");
                count += p.numel();
            }
            Assert.Equal(ModelStats.CountParameters(config), count);
            int norms = 0;
            foreach (var (mname, mod) in m.named_modules())
            {
                if (mod is not TorchSharp.Modules.GroupNorm gn) continue;
                norms++;
                Assert.True(gn.weight!.eq(1f).all().item<bool>(), $"{name}: {mname}.weight is not all 1");
                Assert.True(gn.bias!.eq(0f).all().item<bool>(), $"{name}: {mname}.bias is not all 0");
            }
            Assert.True(norms > 10, $"{name}: only {norms} GroupNorms found");
            if (name == "ho-256")
                Assert.InRange(count, 113_700_000 * 0.99, 113_700_000 * 1.01);
        }
    }

    [Fact]
    public void PresetsAreThePapersSettings()
    {
        var c = Presets.Get("ho-cifar10");
        Assert.Equal((3, 32, 128, 2, 0.1, 32), (c.InChannels, c.ImageSize, c.BaseChannels, c.NumResBlocks, c.Dropout, c.NormGroups));
        Assert.Equal([1, 2, 2, 2], c.ChannelMult);
        Assert.Equal([16], c.AttentionResolutions);
        var h = Presets.Get("ho-256");
        Assert.Equal((3, 256, 128, 2, 0.0), (h.InChannels, h.ImageSize, h.BaseChannels, h.NumResBlocks, h.Dropout));
        Assert.Equal([1, 1, 2, 2, 4, 4], h.ChannelMult);
        Assert.Equal([16], h.AttentionResolutions);
        var s = Presets.Get(Presets.Default);
        Assert.Equal((1, 28), (s.InChannels, s.ImageSize));
        Assert.True(s.NumResBlocks >= 1);
        Assert.Equal([s.ResolutionAt(s.Levels - 1)], s.AttentionResolutions);
        Assert.Equal(["mnist-tiny", "mnist-small", "cifar-small", "ho-cifar10", "ho-256"], Presets.Names);
    }

    /// <summary>The default network is the one issue 12's experiments measured (their configuration file, read as a run's model).</summary>
    [Fact]
    public void TheDefaultIsTheNetworkTheQualityExperimentsMeasured()
    {
        var file = Path.Combine(TestUtil.RepoRoot(), "experiments", "configs", "mnist-ch16.json");
        var measured = System.Text.Json.JsonSerializer.Deserialize<UNetConfig>(File.ReadAllText(file), Ddpm.Runs.TrainConfig.Json)!;
        Assert.Equal(System.Text.Json.JsonSerializer.Serialize(measured), System.Text.Json.JsonSerializer.Serialize(Presets.Get(Presets.Default)));
        Assert.Equal("mnist-tiny", Presets.Default);
    }

    [Fact]
    public void OverridesKeepAttentionAtTheSameLevel()
    {
        var c = Presets.Get("mnist-small", imageSize: 32, channels: 3);
        Assert.Equal((3, 0, 32), (c.InChannels, c.OutChannels, c.ImageSize));
        Assert.Equal([8], c.AttentionResolutions);
        var h = Presets.Get("ho-cifar10", imageSize: 64);
        Assert.Equal([32], h.AttentionResolutions);
        // Get returns fresh copies.
        Presets.Get("ho-cifar10").ChannelMult[0] = 99;
        Assert.Equal(1, Presets.Get("ho-cifar10").ChannelMult[0]);
    }

    [Fact]
    public void UnknownNameAndImpossibleSizeAreUserErrors()
    {
        var e = Assert.Throws<DdpmException>(() => Presets.Get("big-gan"));
        Assert.Contains("big-gan", e.Message);
        foreach (var n in Presets.Names) Assert.Contains(n, e.Message);
        Assert.Throws<DdpmException>(() => Presets.Describe("nope"));

        var s = Assert.Throws<DdpmException>(() => Presets.Get("mnist-small", imageSize: 30));
        Assert.Contains("mnist-small", s.Message);
        Assert.Contains("30", s.Message);
    }

    [Fact]
    public void DescribeNamesParametersAndCost()
    {
        var d = Presets.Describe("ho-cifar10");
        Assert.StartsWith("ho-cifar10:", d);
        Assert.Contains("35.75M parameters", d);
        Assert.DoesNotContain('\n', d);
    }
}

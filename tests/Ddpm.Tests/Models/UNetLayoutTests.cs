using Ddpm.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Tests.Models;

/// <summary>
/// The layout settings that let the U-Net hold diffusers' <c>UNet2DModel</c> checkpoints (NormEps, FlipSinToCos,
/// FreqShift, DownsamplePadding, AttentionHeadChannels, MidAttention), each against a computation written here
/// independently, and their defaults against the original network.
/// </summary>
public class UNetLayoutTests
{
    private static UNetConfig Tiny() => new()
    {
        InChannels = 1, ImageSize = 8, BaseChannels = 16, ChannelMult = [1, 2], NumResBlocks = 1,
        AttentionResolutions = [4], Dropout = 0, NormGroups = 4,
    };

    /// <summary>A config in diffusers' defaults for every layout setting (norm_eps 1e-5, flip_sin_to_cos, freq_shift 0, downsample_padding 1, heads of 8, no middle attention).</summary>
    private static UNetConfig DiffusersLike()
    {
        var c = Tiny();
        c.NormEps = 1e-5; c.FlipSinToCos = true; c.FreqShift = 0; c.DownsamplePadding = 1; c.AttentionHeadChannels = 8; c.MidAttention = false;
        return c;
    }

    private static Dictionary<string, Tensor> Params(nn.Module m) => m.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);

    [Fact]
    public void ExplicitDefaultsBuildTheOriginalNetworkBitForBit()
    {
        using var scope = NewDisposeScope();
        var explicitDefaults = Presets.Get("mnist-small");
        explicitDefaults.NormEps = 1e-6; explicitDefaults.FlipSinToCos = false; explicitDefaults.FreqShift = 1;
        explicitDefaults.DownsamplePadding = 0; explicitDefaults.AttentionHeadChannels = 0; explicitDefaults.MidAttention = true;
        manual_seed(21);
        using var a = new UNet(Presets.Get("mnist-small"));
        manual_seed(21);
        using var b = new UNet(explicitDefaults);
        var pa = Params(a);
        var pb = Params(b);
        Assert.Equal(pa.Keys.Order(StringComparer.Ordinal), pb.Keys.Order(StringComparer.Ordinal));
        Assert.Contains("mid.attn_1.q.weight", pa.Keys);
        foreach (var (name, p) in pa) Assert.True(p.equal(pb[name]).all().item<bool>(), name); // same initialisation draws, same order
        using (no_grad()) foreach (var p in a.parameters().Concat(b.parameters())) p.add_(0.01); // conv_out and proj_out off zero
        a.eval(); b.eval();
        var x = randn(2, 1, 28, 28);
        var t = tensor(new long[] { 0, 617 });
        using (no_grad()) Assert.True(a.call(x, t).equal(b.call(x, t)).all().item<bool>());
    }

    [Fact]
    public void FlipSinToCosSwapsTheHalvesOfTheTimeCode()
    {
        using var scope = NewDisposeScope();
        var t = tensor(new long[] { 0, 1, 37, 999 });
        foreach (int dim in new[] { 8, 7 })
        {
            int half = dim / 2;
            var plain = TimestepEmbedding.Sinusoidal(t, dim, ScalarType.Float64);
            var flipped = TimestepEmbedding.Sinusoidal(t, dim, ScalarType.Float64, flipSinToCos: true);
            Assert.Equal(plain.shape, flipped.shape);
            Assert.True(flipped[.., ..half].equal(plain[.., half..(2 * half)]).all().item<bool>());   // cosines first
            Assert.True(flipped[.., half..(2 * half)].equal(plain[.., ..half]).all().item<bool>());  // then sines
            if (dim % 2 == 1) Assert.Equal(0.0, flipped[.., ^1].abs().max().item<double>()); // the pad stays last
        }
    }

    [Fact]
    public void FreqShiftZeroUsesHalfAsTheDenominator()
    {
        using var scope = NewDisposeScope();
        long[] steps = [0, 3, 100, 999];
        var e = TimestepEmbedding.Sinusoidal(tensor(steps), 6, ScalarType.Float64, freqShift: 0).data<double>().ToArray();
        // dim 6: half 3, freq_i = exp(-ln(10000) i / 3) = 1, 10000^(-1/3), 10000^(-2/3).
        for (int r = 0; r < steps.Length; r++)
            for (int i = 0; i < 3; i++)
            {
                double f = Math.Exp(-Math.Log(10000.0) * i / 3.0);
                Assert.Equal(Math.Sin(steps[r] * f), e[r * 6 + i], 12);
                Assert.Equal(Math.Cos(steps[r] * f), e[r * 6 + 3 + i], 12);
            }
        // The default shift is the original's 1 exactly; a shift that leaves no positive denominator is refused.
        var t = tensor(new long[] { 5, 77 });
        Assert.True(TimestepEmbedding.Sinusoidal(t, 8).equal(TimestepEmbedding.Sinusoidal(t, 8, freqShift: 1)).all().item<bool>());
        Assert.Throws<ArgumentOutOfRangeException>(() => TimestepEmbedding.Sinusoidal(t, 8, freqShift: 4));
    }

    [Fact]
    public void TimeEmbeddingModuleFeedsItsCodeToTheDenseLayers()
    {
        using var scope = NewDisposeScope();
        manual_seed(22);
        using var temb = new TimestepEmbedding(8, flipSinToCos: true, freqShift: 0);
        var p = Params(temb);
        var t = tensor(new long[] { 4, 250 });
        var code = TimestepEmbedding.Sinusoidal(t, 8, flipSinToCos: true, freqShift: 0);
        var expected = nn.functional.linear(nn.functional.silu(nn.functional.linear(code, p["dense.0.weight"], p["dense.0.bias"])),
            p["dense.1.weight"], p["dense.1.bias"]);
        using (no_grad()) Assert.True(allclose(temb.call(t), expected, 1e-6, 1e-6));
    }

    [Theory]
    [InlineData(4, 6)]
    [InlineData(4, 5)]   // odd: ceil(5/2) = 3
    [InlineData(24, 8)]  // 24 channels: SafeConv's unfold path
    public void DownsamplePaddingOneIsAStride2ConvPaddedOnEverySide(int channels, int size)
    {
        using var scope = NewDisposeScope();
        manual_seed(23);
        using var ds = new Downsample(channels, withConv: true, padding: 1);
        var p = Params(ds);
        using (no_grad()) p["conv.bias"].normal_(0, 0.5);
        var x = randn(2, channels, size, size);
        Tensor y;
        using (no_grad()) y = ds.call(x);
        long half = (size + 1) / 2;
        Assert.Equal(new long[] { 2, channels, half, half }, y.shape);
        // In float64, which libtorch's CPU convolution computes without oneDNN (wrong here for 24 input channels in float32).
        var expected = nn.functional.conv2d(x.to(ScalarType.Float64), p["conv.weight"].to(ScalarType.Float64), p["conv.bias"].to(ScalarType.Float64),
            strides: [2, 2], padding: [1, 1]);
        Assert.True(allclose(y.to(ScalarType.Float64), expected, 1e-5, 1e-5));

        // The original's right-and-bottom pad sees the input one pixel down and right: the same weights give another map.
        using var original = new Downsample(channels, withConv: true);
        original.load_state_dict(ds.state_dict());
        if (size % 2 == 0)
            using (no_grad())
            {
                var o = original.call(x);
                Assert.Equal(y.shape, o.shape);
                Assert.False(allclose(y, o, 1e-3, 1e-3));
            }
    }

    [Fact]
    public void MultiHeadAttentionMatchesAPerHeadLoop()
    {
        using var scope = NewDisposeScope();
        manual_seed(24);
        const int c = 8, d = 2, groups = 2;
        const double eps = 0.5;
        using var attn = new AttnBlock(c, groups, headChannels: d, normEps: eps);
        Assert.Equal(4, attn.Heads);
        var p = Params(attn);
        using (no_grad()) foreach (var name in new[] { "proj_out.weight", "proj_out.bias", "q.bias", "k.bias", "v.bias", "norm.weight", "norm.bias" }) p[name].normal_(0, 0.5);
        var x = randn(2, c, 3, 4);
        Tensor y;
        using (no_grad()) y = attn.call(x);

        // Reference: plain torch ops, one head at a time, in float64.
        Tensor P(string n) => p[n].detach().to(ScalarType.Float64);
        var x64 = x.to(ScalarType.Float64);
        var h = nn.functional.group_norm(x64, groups, P("norm.weight"), P("norm.bias"), eps);
        Tensor Conv1(string n, Tensor input) => nn.functional.conv2d(input, P(n + ".weight"), P(n + ".bias")).reshape(2, c, 12);
        var (q, k, v) = (Conv1("q", h), Conv1("k", h), Conv1("v", h));
        var heads = new List<Tensor>();
        for (int i = 0; i < c / d; i++)
        {
            var qi = q[.., (i * d)..((i + 1) * d)];                                 // (N, d, HW)
            var ki = k[.., (i * d)..((i + 1) * d)];
            var vi = v[.., (i * d)..((i + 1) * d)];
            var w = matmul(qi.transpose(1, 2), ki).div(Math.Sqrt(d)).softmax(-1);  // (N, HW query, HW key)
            heads.Add(matmul(vi, w.transpose(1, 2)));                              // (N, d, HW query)
        }
        var o = cat(heads, 1).reshape(2, c, 3, 4);
        var expected = x64 + nn.functional.conv2d(o, P("proj_out.weight"), P("proj_out.bias"));
        Assert.True(allclose(y.to(ScalarType.Float64), expected, 1e-5, 1e-5), $"max diff {(y.to(ScalarType.Float64) - expected).abs().max().item<double>():E2}");

        // One head of all C channels is the paper's attention.
        using var single = new AttnBlock(c, groups, headChannels: 0, normEps: eps);
        using var oneHead = new AttnBlock(c, groups, headChannels: c, normEps: eps);
        single.load_state_dict(attn.state_dict());
        oneHead.load_state_dict(attn.state_dict());
        Assert.Equal(1, oneHead.Heads);
        using (no_grad())
        {
            var a = single.call(x);
            Assert.True(allclose(a, oneHead.call(x), 1e-6, 1e-6));
            Assert.False(allclose(a, y, 1e-3, 1e-3)); // four heads are not one
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => new AttnBlock(c, groups, headChannels: 3));
    }

    [Fact]
    public void EveryAttentionBlockGetsTheHeadsOfItsChannels()
    {
        var c = Tiny();
        c.AttentionResolutions = [8, 4];
        c.AttentionHeadChannels = 8;
        using var m = new UNet(c);
        var heads = m.named_modules().Where(kv => kv.module is AttnBlock).ToDictionary(kv => kv.name, kv => ((AttnBlock)kv.module).Heads);
        Assert.Equal(2, heads["down.0.attn.0"]);  // 16 channels
        Assert.Equal(4, heads["down.1.attn.0"]);  // 32 channels
        Assert.Equal(4, heads["mid.attn_1"]);
        Assert.Equal(2, heads["up.0.attn.1"]);
        Assert.All(heads.Values, h => Assert.True(h > 1));
    }

    [Fact]
    public void WithoutMidAttentionTheMiddleIsTwoResidualBlocks()
    {
        using var scope = NewDisposeScope();
        manual_seed(25);
        using var a = new UNet(Tiny());
        var noMid = Tiny();
        noMid.MidAttention = false;
        using var b = new UNet(noMid);

        var keysA = a.state_dict().Keys.ToHashSet();
        var keysB = b.state_dict().Keys.ToHashSet();
        Assert.DoesNotContain(keysB, key => key.StartsWith("mid.attn_1", StringComparison.Ordinal));
        Assert.Equal(keysA.Where(key => !key.StartsWith("mid.attn_1.", StringComparison.Ordinal)).Order(StringComparer.Ordinal), keysB.Order(StringComparer.Ordinal));
        Assert.Equal(10, keysA.Count - keysB.Count); // norm, q, k, v, proj_out: weight and bias
        Assert.Equal(ModelStats.CountParameters(b), ModelStats.CountParameters(noMid));

        // A fresh attention block is the identity (proj_out starts at zero): the same weights give the same output without it.
        using (no_grad()) Params(a)["conv_out.weight"].normal_(0, 0.1);
        var sd = a.state_dict().Where(kv => !kv.Key.StartsWith("mid.attn_1.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key, kv => kv.Value);
        b.load_state_dict(sd);
        a.eval(); b.eval();
        var x = randn(2, 1, 8, 8);
        var t = tensor(new long[] { 10, 900 });
        using (no_grad())
        {
            Assert.True(allclose(a.call(x, t), b.call(x, t), 1e-6, 1e-6));
            Params(a)["mid.attn_1.proj_out.weight"].normal_(0, 0.5);
            Assert.False(allclose(a.call(x, t), b.call(x, t), 1e-4, 1e-4)); // and a working one is really gone
        }
    }

    [Fact]
    public void NormEpsReachesEveryGroupNorm()
    {
        using var scope = NewDisposeScope();
        manual_seed(26);
        var config = DiffusersLike();
        config.NormEps = 0.25;
        using var m = new UNet(config);
        var norms = m.named_modules().Where(kv => kv.module is GroupNorm).ToList();
        // 2 per residual block (2 down, 2 middle, 4 up), 1 per attention block (1 down, 2 up), norm_out.
        Assert.Equal(20, norms.Count);
        foreach (var (name, module) in norms)
        {
            var norm = (GroupNorm)module;
            var p = Params(norm);
            using (no_grad()) { p["weight"].normal_(1, 0.2); p["bias"].normal_(0, 0.2); }
            long channels = p["weight"].shape[0];
            var x = randn(2, channels, 3, 3) * 0.5;
            Tensor y;
            using (no_grad()) y = norm.call(x);
            var withEps = nn.functional.group_norm(x, config.NormGroups, p["weight"], p["bias"], 0.25);
            var original = nn.functional.group_norm(x, config.NormGroups, p["weight"], p["bias"], 1e-6);
            Assert.True(allclose(y, withEps, 1e-5, 1e-5), name);
            Assert.False(allclose(y, original, 1e-3, 1e-3), name);
        }
    }

    [Fact]
    public void ADiffusersLayoutTrainsEndToEnd()
    {
        using var scope = NewDisposeScope();
        manual_seed(27);
        var config = DiffusersLike();
        using var m = new UNet(config);
        using (no_grad()) foreach (var p in m.parameters()) p.add_(randn_like(p) * 0.01);
        var x = randn(3, 1, 8, 8);
        var y = m.call(x, tensor(new long[] { 0, 500, 999 }));
        Assert.Equal(x.shape, y.shape);
        y.square().mean().backward();
        foreach (var (name, p) in m.named_parameters())
        {
            Assert.NotNull(p.grad);
            Assert.True(isfinite(p.grad!).all().item<bool>(), name);
        }
        Assert.Equal(ModelStats.CountParameters(m), ModelStats.CountParameters(config));
    }
}

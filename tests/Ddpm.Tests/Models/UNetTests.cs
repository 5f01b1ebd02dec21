using Ddpm.Models;
using Ddpm.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Models;

public class UNetTests
{
    private static UNetConfig Tiny(int inChannels = 1, int imageSize = 8) => new()
    {
        InChannels = inChannels, ImageSize = imageSize, BaseChannels = 8, ChannelMult = [1, 2], NumResBlocks = 1,
        AttentionResolutions = [imageSize / 2], Dropout = 0, NormGroups = 4,
    };

    private static UNetConfig Small(int inChannels, int imageSize) => new()
    {
        InChannels = inChannels, ImageSize = imageSize, BaseChannels = 16, ChannelMult = [1, 2, 2], NumResBlocks = 1,
        AttentionResolutions = [imageSize / 4], Dropout = 0.1, NormGroups = 8,
    };

    private static Tensor Steps(int n) => randint(0, 1000, [n], dtype: ScalarType.Int64);

    [Theory]
    [InlineData(1, 28, 0)]
    [InlineData(3, 28, 0)]
    [InlineData(1, 32, 0)]
    [InlineData(3, 32, 0)]
    [InlineData(3, 32, 6)]
    [InlineData(1, 28, 2)]
    public void OutputHasTheInputsShape(int channels, int size, int outChannels)
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        var config = Small(channels, size);
        config.OutChannels = outChannels;
        using var m = new UNet(config);
        var y = m.call(randn(2, channels, size, size), Steps(2));
        Assert.Equal(new long[] { 2, outChannels == 0 ? channels : outChannels, size, size }, y.shape);
        Assert.Equal(ScalarType.Float32, y.dtype);
    }

    [Fact]
    public void FreshModelOutputsExactZerosUntilConvOutChanges()
    {
        using var scope = NewDisposeScope();
        manual_seed(2);
        using var m = new UNet(Presets.Get("mnist-small"));
        m.eval();
        var x = randn(3, 1, 28, 28);
        var t = tensor(new long[] { 0, 500, 999 });
        using (no_grad())
        {
            var y = m.call(x, t);
            Assert.True(isfinite(y).all().item<bool>());
            Assert.Equal(0.0, y.abs().max().item<float>());

            var w = m.named_parameters().Single(p => p.name == "conv_out.weight").parameter;
            w.normal_(0, 0.05);
            var y2 = m.call(x, t);
            Assert.True(isfinite(y2).all().item<bool>());
            Assert.True(y2.abs().max().item<float>() > 1e-4);
            // Every residual branch starts at zero, so the timestep has no effect yet; once conv2 is perturbed it does.
            var one = x[0].unsqueeze(0).expand(2, -1, -1, -1);
            var before = m.call(one, tensor(new long[] { 0, 999 }));
            Assert.True(allclose(before[0], before[1]));
            foreach (var (name, p) in m.named_parameters())
                if (name.EndsWith("conv2.weight", StringComparison.Ordinal)) p.normal_(0, 0.05);
            var same = m.call(one, tensor(new long[] { 0, 999 }));
            Assert.False(allclose(same[0], same[1]));
        }
    }

    // libtorch 2.10 (TorchSharp-cpu 0.107.0) returns wrong, sometimes NaN, input gradients for some CPU convs (see
    // SafeConv); every model conv goes through SafeConv, so a full backward pass must give finite gradients.
    [Fact]
    public void BackwardGivesFiniteGradientsEverywhereOnceConvOutIsNonZero()
    {
        using var scope = NewDisposeScope();
        for (int trial = 0; trial < 5; trial++)
        {
            manual_seed(3 + trial);
            using var m = new UNet(Tiny());
            using (no_grad()) m.named_parameters().Single(p => p.name == "conv_out.weight").parameter.normal_(0, 0.1);
            var loss = m.call(randn(2, 1, 8, 8), Steps(2)).square().mean();
            loss.backward();
            foreach (var (name, p) in m.named_parameters())
            {
                Assert.NotNull(p.grad);
                Assert.True(isfinite(p.grad!).all().item<bool>(), name);
            }
        }
    }

    /// <summary>
    /// SafeConv's gradients against float64 autograd of the same conv written as unfold + matmul, under both policies:
    /// the default (libtorch's own input gradient from <see cref="SafeConv.TrustedInputGradChannels"/> output channels
    /// on) and every input gradient through the workaround. The wide rows are the shapes of the presets' layers
    /// (mnist-tiny 16 channels at 28, mnist-small 32 and 64 channels at 28 and 14, the paper's 128 at 16) that take
    /// libtorch's own backward.
    /// </summary>
    [Theory]
    [InlineData(16, 32, 32, 28, 3, 1, 1)]
    [InlineData(16, 16, 16, 28, 3, 1, 1)]  // mnist-tiny's 28x28 layers: 16 output channels, libtorch's own backward since
    [InlineData(16, 48, 16, 28, 3, 1, 1)]  // the threshold became 16 (its up path: 32 + 16 and 16 + 16 inputs)
    [InlineData(16, 32, 16, 28, 1, 1, 0)]
    [InlineData(16, 16, 16, 29, 3, 2, 0)]  // its first Downsample (after the asymmetric pad)
    [InlineData(16, 64, 32, 28, 3, 1, 1)]
    [InlineData(16, 64, 64, 14, 3, 1, 1)]
    [InlineData(8, 32, 32, 28, 3, 2, 0)]   // mnist-small's first Downsample
    [InlineData(4, 128, 128, 16, 3, 1, 1)]
    [InlineData(8, 32, 3, 32, 3, 1, 1)]    // an RGB output conv: few output channels, the workaround's path
    [InlineData(8, 8, 8, 16, 3, 1, 1)]
    [InlineData(64, 32, 1, 28, 3, 1, 1)]
    [InlineData(4, 16, 8, 28, 3, 1, 1)]
    [InlineData(4, 8, 8, 15, 3, 2, 0)]     // Downsample: stride 2 after the asymmetric pad (odd size)
    [InlineData(4, 8, 16, 9, 3, 2, 1)]
    [InlineData(8, 32, 32, 28, 3, 2, 1)]   // diffusers' Downsample (DownsamplePadding 1)
    [InlineData(4, 8, 8, 16, 3, 2, 1)]     // the same with few output channels: the workaround's path
    [InlineData(4, 16, 8, 7, 1, 1, 0)]     // 1x1 (nin_shortcut, attention)
    [InlineData(4, 24, 8, 8, 3, 1, 1)]     // odd multiple of 8 input channels: oneDNN forward is wrong, unfold path
    [InlineData(4, 16, 24, 8, 3, 1, 1)]
    public void SafeConvGradientsAreCorrect(int batch, int cin, int cout, int size, int kernel, int stride, int padding)
    {
        int trusted = SafeConv.TrustedInputGradChannels;
        try
        {
            foreach (int policy in new[] { trusted, int.MaxValue })
            {
                SafeConv.TrustedInputGradChannels = policy;
                CheckSafeConvGradients(batch, cin, cout, size, kernel, stride, padding);
            }
        }
        finally
        {
            SafeConv.TrustedInputGradChannels = trusted;
        }
    }

    private static void CheckSafeConvGradients(int batch, int cin, int cout, int size, int kernel, int stride, int padding)
    {
        using var scope = NewDisposeScope();
        for (int trial = 0; trial < 4; trial++)
        {
            manual_seed(9 + trial);
            var conv = nn.Conv2d(cin, cout, kernel, stride: stride, padding: padding);
            var z = randn(batch, cin, size, size);
            long outSize = (size + 2 * padding - kernel) / stride + 1;
            var g = randn(batch, cout, outSize, outSize);
            var zd = z.to(ScalarType.Float64).requires_grad_(true);
            var wd = conv.weight!.detach().to(ScalarType.Float64).requires_grad_(true);
            var bd = conv.bias!.detach().to(ScalarType.Float64).requires_grad_(true);
            var yd = (matmul(wd.reshape(cout, -1), nn.functional.unfold(zd, kernel, padding: padding, stride: stride))
                .reshape(batch, cout, outSize, outSize)) + bd.reshape(1, cout, 1, 1);
            var expected = torch.autograd.grad([yd], [zd, wd, bd], [g.to(ScalarType.Float64)]);
            var zz = z.clone().requires_grad_(true);
            var y = SafeConv.Forward(conv, zz);
            Assert.True(allclose(y.to(ScalarType.Float64), yd.detach(), 1e-4, 1e-4)); // the forward pass
            var actual = torch.autograd.grad([y], [zz, conv.weight!, conv.bias!], [g]);
            for (int i = 0; i < 3; i++)
                Assert.True(allclose(actual[i].to(ScalarType.Float64), expected[i], 1e-3, 1e-3), $"gradient {i}, trial {trial}, trusted from {SafeConv.TrustedInputGradChannels} channels");
        }
    }

    [Fact]
    public void StateDictKeysFollowTheOriginalLayout()
    {
        using var m = new UNet(Tiny());
        var sd = m.state_dict();
        var shapes = sd.ToDictionary(kv => kv.Key, kv => kv.Value.shape);

        string[] Res(string p, bool shortcut) =>
            new[] { "norm1", "conv1", "temb_proj", "norm2", "conv2" }.Concat(shortcut ? ["nin_shortcut"] : Array.Empty<string>())
                .SelectMany(n => new[] { $"{p}.{n}.weight", $"{p}.{n}.bias" }).ToArray();
        string[] Attn(string p) => new[] { "norm", "q", "k", "v", "proj_out" }.SelectMany(n => new[] { $"{p}.{n}.weight", $"{p}.{n}.bias" }).ToArray();
        string[] Wb(string p) => [$"{p}.weight", $"{p}.bias"];

        var expected = new List<string>();
        expected.AddRange(Wb("temb.dense.0")); expected.AddRange(Wb("temb.dense.1"));
        expected.AddRange(Wb("conv_in"));
        expected.AddRange(Res("down.0.block.0", false));
        expected.AddRange(Wb("down.0.downsample.conv"));
        expected.AddRange(Res("down.1.block.0", true));
        expected.AddRange(Attn("down.1.attn.0"));
        expected.AddRange(Res("mid.block_1", false)); expected.AddRange(Attn("mid.attn_1")); expected.AddRange(Res("mid.block_2", false));
        expected.AddRange(Res("up.0.block.0", true)); expected.AddRange(Res("up.0.block.1", true));
        expected.AddRange(Res("up.1.block.0", true)); expected.AddRange(Res("up.1.block.1", true));
        expected.AddRange(Attn("up.1.attn.0")); expected.AddRange(Attn("up.1.attn.1"));
        expected.AddRange(Wb("up.1.upsample.conv"));
        expected.AddRange(Wb("norm_out")); expected.AddRange(Wb("conv_out"));

        Assert.Equal(144, expected.Count);
        Assert.Equal(expected.OrderBy(k => k, StringComparer.Ordinal), shapes.Keys.OrderBy(k => k, StringComparer.Ordinal));

        Assert.Equal(new long[] { 32, 8 }, shapes["temb.dense.0.weight"]);
        Assert.Equal(new long[] { 32, 32 }, shapes["temb.dense.1.weight"]);
        Assert.Equal(new long[] { 8, 1, 3, 3 }, shapes["conv_in.weight"]);
        Assert.Equal(new long[] { 8, 8, 3, 3 }, shapes["down.0.downsample.conv.weight"]);
        Assert.Equal(new long[] { 16, 8, 1, 1 }, shapes["down.1.block.0.nin_shortcut.weight"]);
        Assert.Equal(new long[] { 16, 32 }, shapes["down.1.block.0.temb_proj.weight"]);
        Assert.Equal(new long[] { 16, 16, 1, 1 }, shapes["mid.attn_1.q.weight"]);
        Assert.Equal(new long[] { 32 }, shapes["up.1.block.0.norm1.weight"]);       // 16 + skip 16
        Assert.Equal(new long[] { 16, 24, 3, 3 }, shapes["up.1.block.1.conv1.weight"]); // 16 + skip 8 (the downsampled map)
        Assert.Equal(new long[] { 8, 24, 1, 1 }, shapes["up.0.block.0.nin_shortcut.weight"]);
        Assert.Equal(new long[] { 16, 16, 3, 3 }, shapes["up.1.upsample.conv.weight"]);
        Assert.Equal(new long[] { 1, 8, 3, 3 }, shapes["conv_out.weight"]);
    }

    [Fact]
    public void StateDictLoadsIntoAFreshModel()
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        using var a = new UNet(Tiny());
        using (no_grad()) a.named_parameters().Single(p => p.name == "conv_out.weight").parameter.normal_(0, 0.1);
        using var b = new UNet(Tiny());
        b.load_state_dict(a.state_dict());
        a.eval(); b.eval();
        var x = randn(2, 1, 8, 8);
        var t = tensor(new long[] { 3, 700 });
        using (no_grad()) Assert.True(allclose(a.call(x, t), b.call(x, t)));
    }

    [Fact]
    public void LayersStartWithVarianceScalingFanAvgUniformAndZeroBiases()
    {
        manual_seed(5);
        using var m = new UNet(Presets.Get("mnist-small"));
        var p = m.named_parameters().ToDictionary(kv => kv.name, kv => kv.parameter);
        var w = p["down.1.block.0.conv1.weight"]; // [64, 32, 3, 3]: fan_in 288, fan_out 576
        double limit = Math.Sqrt(3.0 / ((288 + 576) / 2.0));
        Assert.True(w.abs().max().item<float>() <= limit + 1e-7);
        Assert.InRange(w.std().item<float>(), limit / Math.Sqrt(3) * 0.97, limit / Math.Sqrt(3) * 1.03);
        var d = p["temb.dense.1.weight"]; // [128, 128]
        Assert.InRange(d.std().item<float>(), Math.Sqrt(1.0 / 128) * 0.95, Math.Sqrt(1.0 / 128) * 1.05);
        Assert.Equal(0f, p["down.1.block.0.conv1.bias"].abs().max().item<float>());
        Assert.Equal(0f, p["temb.dense.0.bias"].abs().max().item<float>());
        foreach (var zeroed in new[] { "down.1.block.0.conv2.weight", "mid.attn_1.proj_out.weight", "conv_out.weight" })
            Assert.Equal(0f, p[zeroed].abs().max().item<float>());
    }

    [Fact]
    public void BadInputsAreOneLineUserErrors()
    {
        using var scope = NewDisposeScope();
        using var m = new UNet(Tiny());
        Assert.Throws<DdpmException>(() => m.call(randn(2, 3, 8, 8), Steps(2)));    // channels
        Assert.Throws<DdpmException>(() => m.call(randn(2, 1, 7, 7), Steps(2)));    // not divisible by 2
        Assert.Throws<DdpmException>(() => m.call(randn(2, 1, 8, 8), Steps(3)));    // one step per image
        Assert.Throws<DdpmException>(() => m.call(randn(2, 1, 8, 8), ones(2)));    // float steps
        Assert.Throws<DdpmException>(() => m.call(randn(2, 1, 8, 8, dtype: ScalarType.Float64), Steps(2)));
        var e = Assert.Throws<DdpmException>(() => m.call(randn(8, 8), Steps(2)));
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void ConfigIsAPrivateCopy()
    {
        var c = Tiny();
        using var m = new UNet(c);
        c.ChannelMult[1] = 7;
        Assert.Equal(2, m.Config.ChannelMult[1]);
    }
}

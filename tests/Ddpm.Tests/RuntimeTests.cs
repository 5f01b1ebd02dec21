using Ddpm.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests;

public class RuntimeTests
{
    [Fact]
    public void TorchLoadsAndComputes()
    {
        using var a = tensor(new float[] { 1, 2, 3 });
        Assert.Equal(6f, a.sum().item<float>());
    }

    [Fact]
    public void UnknownDeviceIsAUserError()
    {
        var e = Assert.Throws<DdpmException>(() => TorchRuntime.ResolveDevice("tpu"));
        Assert.Contains("tpu", e.Message);
    }

    [Fact]
    public void CpuAndAutoResolveWithoutCuda()
    {
        Assert.Equal(DeviceType.CPU, TorchRuntime.ResolveDevice("cpu").type);
        if (!cuda.is_available()) Assert.Equal(DeviceType.CPU, TorchRuntime.ResolveDevice("auto").type);
    }

    [Fact]
    public void NnpackSwitchReadsBackAndConvolutionsAgree()
    {
        using var gen = new Generator(3, CPU);
        using var x = randn(new long[] { 32, 8, 12, 12 }, generator: gen);
        using var w = randn(new long[] { 16, 8, 3, 3 }, generator: gen);
        using var _ = no_grad();
        var before = TorchRuntime.NnpackEnabled();
        try
        {
            Assert.True(TorchRuntime.SetNnpack(true));
            Assert.True(TorchRuntime.NnpackEnabled());
            using var on = nn.functional.conv2d(x, w, padding: new long[] { 1, 1 });
            Assert.True(TorchRuntime.SetNnpack(false));
            Assert.False(TorchRuntime.NnpackEnabled());
            using var off = nn.functional.conv2d(x, w, padding: new long[] { 1, 1 });
            Assert.True(on.allclose(off, rtol: 1e-4, atol: 1e-4));
        }
        finally
        {
            if (before is bool b) TorchRuntime.SetNnpack(b);
        }
    }
}

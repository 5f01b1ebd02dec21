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
}

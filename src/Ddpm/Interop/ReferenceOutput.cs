using Ddpm.IO;
using Ddpm.Models;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.Interop;

/// <summary>
/// A network's output on a fixed input, written beside a conversion so that another framework can check that it
/// rebuilds the same network: <c>x</c> (4, C, S, S) float32 with x.flatten()[k] = sin(0.37 k), <c>t</c> = [0, T/4, T/2,
/// T - 1] (int64) and <c>out</c> = the network's float32 output on the CPU; the layout of diffusers' own test fixtures.
/// </summary>
public static class ReferenceOutput
{
    /// <summary>The fixed input for a network of <paramref name="model"/>'s shape and <paramref name="timesteps"/> steps.</summary>
    public static (Tensor X, Tensor T) Input(UNetConfig model, int timesteps)
    {
        ArgumentNullException.ThrowIfNull(model);
        int c = model.InChannels, s = model.ImageSize;
        var x = sin(arange(4L * c * s * s, dtype: ScalarType.Float64) * 0.37).to(ScalarType.Float32).reshape(4, c, s, s);
        var t = tensor(new long[] { 0, timesteps / 4, timesteps / 2, timesteps - 1 });
        return (x, t);
    }

    /// <summary>Writes x, t and <paramref name="network"/>'s output (evaluation mode, float32, CPU) to a safetensors file, atomically.</summary>
    public static void Write(UNet network, int timesteps, string file)
    {
        ArgumentNullException.ThrowIfNull(network);
        using var scope = NewDisposeScope();
        var (x, t) = Input(network.Config, timesteps);
        bool training = network.training;
        network.eval();
        Tensor y;
        using (no_grad()) y = network.call(x.to(network.Device()), t.to(network.Device())).cpu().to(ScalarType.Float32);
        if (training) network.train();
        var tmp = file + ".tmp";
        Safetensors.SaveStateDict(tmp, new Dictionary<string, Tensor> { ["x"] = x, ["t"] = t, ["out"] = y.contiguous() });
        AtomicFile.FlushToDisk(tmp);
        File.Move(tmp, file, overwrite: true);
    }

    private static Device Device(this UNet network) => network.parameters().First().device;
}

using System.Globalization;
using Ddpm.Models;
using Ddpm.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Bench;

/// <summary>
/// A stress check of libtorch's own CPU convolution backward (oneDNN; see SafeConv): for every convolution of a
/// preset with at least <see cref="SafeConv.TrustedInputGradChannels"/> output channels (those whose input gradient
/// SafeConv leaves to libtorch), the input gradient of many random calls at the preset's image size and its halvings,
/// batches 8 to 64, against float64 autograd of the same convolution as unfold + matmul (SafeConv.Unfolded). A 16-to-8 convolution,
/// where the bug was measured, runs first as a control: a check that finds nothing wrong there cannot be trusted.
/// </summary>
public static class ConvCheck
{
    public static void Run(string preset, int trials, Action<string> line)
    {
        var inv = CultureInfo.InvariantCulture;
        var config = Presets.Get(preset);
        int size = config.ImageSize;
        using var unet = new UNet(config);
        var shapes = unet.modules().OfType<Conv2d>()
            .Where(c => c.out_channels >= SafeConv.TrustedInputGradChannels)
            .Select(c => (Cin: c.in_channels, Cout: c.out_channels, K: c.kernel_size[0], S: c.stride[0], P: c.padding![0]))
            .Distinct().ToList();
        line($"conv check: {shapes.Count} convolution shapes of {preset} take libtorch's own input gradient (from {SafeConv.TrustedInputGradChannels} output channels); {trials} calls per shape, size and batch, {get_num_threads()} threads");
        var control = (Cin: 16L, Cout: 8L, K: 3L, S: 1L, P: 1L);
        int controlWrong = Check(control, size, trials, out int controlCalls);
        line(string.Format(inv, "control 16->8 3x3 (the measured bug): {0} of {1} input gradients wrong", controlWrong, controlCalls));
        int wrong = 0, calls = 0;
        foreach (var s in shapes)
        {
            int w = Check(s, size, trials, out int n);
            wrong += w;
            calls += n;
            line(string.Format(inv, "{0}->{1} {2}x{2} stride {3}: {4} of {5} wrong", s.Cin, s.Cout, s.K, s.S, w, n));
        }
        line(string.Format(inv, "conv check: {0} of {1} input gradients wrong{2}", wrong, calls,
            controlWrong == 0 ? " (the control found nothing either: this machine may not have the bug, and the check proves nothing here)" : ""));
    }

    private static int Check((long Cin, long Cout, long K, long S, long P) c, int imageSize, int trials, out int calls)
    {
        int wrong = 0;
        calls = 0;
        foreach (int size in new[] { imageSize, imageSize / 2, imageSize / 4 })
        foreach (int batch in new[] { 64, 32, 8 })
        for (int trial = 0; trial < trials; trial++)
        {
            using var scope = NewDisposeScope();
            manual_seed(1000 * trial + 7 * size + batch);
            using var conv = nn.Conv2d(c.Cin, c.Cout, c.K, stride: c.S, padding: c.P);
            var z = randn(batch, c.Cin, size, size);
            long o = (size + 2 * c.P - c.K) / c.S + 1;
            var g = randn(batch, c.Cout, o, o);
            var zz = z.clone().requires_grad_(true);
            var actual = autograd.grad([conv.call(zz)], [zz], [g])[0];   // libtorch's own forward and backward
            // The reference: the same weights in float64 through SafeConv's unfold + matmul path (plain GEMMs).
            conv.to(ScalarType.Float64);
            var zd = z.to(ScalarType.Float64).requires_grad_(true);
            var expected = autograd.grad([SafeConv.Unfolded(conv, zd)], [zd], [g.to(ScalarType.Float64)])[0];
            calls++;
            if (!allclose(actual.to(ScalarType.Float64), expected, 1e-3, 1e-3)) wrong++;
        }
        return wrong;
    }
}

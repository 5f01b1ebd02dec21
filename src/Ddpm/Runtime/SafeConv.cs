using TorchSharp;
using TorchSharp.Modules;
using static Ddpm.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Ddpm.Runtime;

/// <summary>
/// Runs a Conv2d so that its output and gradients are right on the CPU.
/// <para>
/// libtorch 2.10's CPU convolutions (oneDNN) give wrong results on this project's reference machine (AMD EPYC,
/// AVX2), measured against a float64 reference:
/// (1) the backward-data pass (the input gradient, and conv_transpose2d's forward) of 3x3 convs with few output
/// channels, e.g. 8 to 8, 16 to 8, 32 to 1, 32 to 3, wrong or NaN in 10 to 100 % of calls; a U-Net's output conv
/// (ch to 1 for grey images) is such a shape, so every gradient below it was corrupted. With 16 output channels or
/// more (16, 32, 64, 128 from 1 to 128 inputs, batches 8 to 64, 28x28 to 7x7) it was right in every trial;
/// (2) the forward pass when the input channel count is an odd multiple of 8 above 16 (24 to anything: always wrong).
/// The forward pass for other shapes and the weight gradient were right in every trial.
/// </para>
/// <para>
/// So, for convolutions with fewer than <see cref="TrustedInputGradChannels"/> output channels: the weight and bias
/// gradients come from libtorch's convolution run on a detached input, and the input gradient from
/// <see cref="ConvInputGrad"/>, which computes it with a forward convolution (same FLOPs as the plain backward, but
/// about 1.2x the time of libtorch's fused backward on a 32-to-32 layer: see the benchmark). Wider convolutions take
/// libtorch's own backward. Shapes of kind (2) run as unfold + matmul, whose forward and backward are plain GEMMs
/// (slower, but right). Other devices take the plain path.
/// </para>
/// </summary>
public static class SafeConv
{
    /// <summary>
    /// Output channel counts from which libtorch's own input gradient is used on the CPU. The wrong results were
    /// measured at 1, 3 and 8 output channels and never at 16 or more. The threshold was 32 (a margin) until a stress
    /// check of every 16-output-channel convolution of mnist-tiny (1, 16, 32 and 48 inputs, 3x3 and 1x1, stride 1
    /// and 2, 28x28 to 7x7, batches 8 to 64, 1 and 2 threads) found libtorch's input gradient right in all of
    /// thousands of calls while the same check caught the bug in most calls of a 16-to-8 control (README, "Bugs of
    /// libtorch"); mnist-tiny's 28x28 layers have 16 channels, so the margin cost the default model most of its
    /// workaround time. Settable so that a benchmark can price the workaround (int.MaxValue: every convolution's input
    /// gradient through <see cref="ConvInputGrad"/>).
    /// </summary>
    public static int TrustedInputGradChannels { get; set; } = 16;

    public static Tensor Forward(Conv2d conv, Tensor x)
    {
        if (x.device_type != DeviceType.CPU || !IsPlain(conv)) return conv.call(x);
        if (Risky(conv.in_channels) || Risky(conv.out_channels)) return Unfolded(conv, x);
        if (!x.requires_grad || !is_grad_enabled() || conv.out_channels >= TrustedInputGradChannels) return conv.call(x);
        using var scope = NewDisposeScope();
        var y = nn.functional.conv2d(x.detach(), conv.weight!, conv.bias, strides: conv.stride, padding: conv.padding);
        var gradPath = ConvInputGrad.apply(x, conv.weight!.detach(), conv.stride[0], conv.padding![0]);
        return y.add(gradPath, Int1).MoveToOuterDisposeScope();   // y + gradPath, its alpha held (see HeldScalars)
    }

    /// <summary>Channel counts whose oneDNN forward convolution was wrong here: odd multiples of 8 above 16.</summary>
    public static bool Risky(long channels) => channels > 16 && channels % 16 != 0;

    /// <summary>The convolution as unfold (im2col) and a matrix product: every step a plain, correct kernel.</summary>
    public static Tensor Unfolded(Conv2d conv, Tensor x)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0], cout = conv.out_channels, k = conv.kernel_size[0], s = conv.stride[0], p = conv.padding![0];
        long hout = (x.shape[2] + 2 * p - k) / s + 1, wout = (x.shape[3] + 2 * p - k) / s + 1;
        var cols = nn.functional.unfold(x, k, padding: p, stride: s);            // (N, Cin k k, L)
        var y = conv.weight!.reshape(cout, -1).matmul(cols).reshape(n, cout, hout, wout);
        if (conv.bias is not null) y = y.add(conv.bias.reshape(1, cout, 1, 1), Int1);   // y + bias, its alpha held (see HeldScalars)
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>The shapes this path handles: square stride and padding, no dilation or groups, zero padding.</summary>
    private static bool IsPlain(Conv2d conv) =>
        conv.groups == 1 && conv.dilation.All(d => d == 1) && conv.stride.Length == 2 && conv.stride[0] == conv.stride[1]
        && conv.padding is { Length: 2 } pad && pad[0] == pad[1] && conv.padding_mode == PaddingModes.Zeros
        && conv.kernel_size[0] == conv.kernel_size[1];
}

/// <summary>
/// Forward: zeros of the convolution's output shape (added to the real output, so it changes nothing).
/// Backward: the convolution's input gradient, dL/dx = full correlation of the stride-dilated dL/dy with the
/// flipped, transposed kernel, cropped by the padding; computed with a forward convolution only.
/// </summary>
internal sealed class ConvInputGrad : autograd.SingleTensorFunction<ConvInputGrad>
{
    public override string Name => nameof(ConvInputGrad);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var w = (Tensor)vars[1];
        long s = (long)vars[2], p = (long)vars[3], k = w.shape[2];
        long hout = (x.shape[2] + 2 * p - k) / s + 1, wout = (x.shape[3] + 2 * p - k) / s + 1;
        ctx.save_for_backward(new List<Tensor> { w });
        ctx.save_data("s", s);
        ctx.save_data("p", p);
        ctx.save_data("h", x.shape[2]);
        ctx.save_data("w", x.shape[3]);
        return zeros(new long[] { x.shape[0], w.shape[0], hout, wout }, dtype: x.dtype, device: x.device);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gy)
    {
        var w = ctx.get_saved_variables()[0];
        long s = (long)ctx.get_data("s"), p = (long)ctx.get_data("p");
        long hin = (long)ctx.get_data("h"), win = (long)ctx.get_data("w"), k = w.shape[2];
        var g = gy;
        if (s > 1)
        {
            // Put the output gradient back on the input's grid: zeros between the strided positions.
            var dilated = zeros(new long[] { gy.shape[0], gy.shape[1], (gy.shape[2] - 1) * s + 1, (gy.shape[3] - 1) * s + 1 }, dtype: gy.dtype, device: gy.device);
            dilated[TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(null, null, s), TensorIndex.Slice(null, null, s)] = gy;
            g = dilated;
        }
        // Rows and columns of the padded input that the strided conv never reached get zero gradient.
        long rh = (hin + 2 * p - k) % s, rw = (win + 2 * p - k) % s;
        g = nn.functional.pad(g, new long[] { k - 1, k - 1 + rw, k - 1, k - 1 + rh });
        var gx = nn.functional.conv2d(g, w.flip(2, 3).transpose(0, 1));
        gx = gx[TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(p, p + hin), TensorIndex.Slice(p, p + win)];
        return new List<Tensor> { gx, null!, null!, null! };
    }
}

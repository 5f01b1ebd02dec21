using Ddpm.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Models;

/// <summary>
/// Halves the feature map. With a conv (the paper): pad right and bottom by one, then conv3x3 stride 2 without padding,
/// which is what TensorFlow's 'SAME' padding does for a stride-2 3x3 conv on an even input; or, for diffusers' layout
/// (padding 1), conv3x3 stride 2 with one pixel of padding on every side, whose taps sit one pixel up and left of the
/// original's. Both give ceil(H/2) x ceil(W/2) on an even input. Without a conv: 2x2 average pooling.
/// State-dict key: <c>conv</c> (with a conv only).
/// </summary>
public sealed class Downsample : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are state-dict keys
    private readonly Conv2d? conv;
#pragma warning restore IDE1006

    private readonly int _padding;

    /// <param name="channels">Channels in and out.</param>
    /// <param name="withConv">A stride-2 conv (true) or average pooling (false).</param>
    /// <param name="padding">0: pad right and bottom by one (the original); 1: the conv pads every side by one (diffusers). Used with a conv only.</param>
    public Downsample(int channels, bool withConv, int padding = 0) : base(nameof(Downsample))
    {
        if (padding is not (0 or 1)) throw new ArgumentOutOfRangeException(nameof(padding), padding, "must be 0 or 1");
        _padding = padding;
        if (withConv) conv = Init.Conv(channels, channels, 3, stride: 2, padding: padding);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (conv is null) return nn.functional.avg_pool2d(x, 2, 2);
        if (_padding == 1) return SafeConv.Forward(conv, x);
        using var scope = NewDisposeScope();
        var padded = nn.functional.pad(x, [0, 1, 0, 1]);
        return SafeConv.Forward(conv, padded).MoveToOuterDisposeScope();
    }
}

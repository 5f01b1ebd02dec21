using Ddpm.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Models;

/// <summary>
/// Halves the feature map. With a conv (the paper): pad right and bottom by one, then conv3x3 stride 2 without padding,
/// which is what TensorFlow's 'SAME' padding does for a stride-2 3x3 conv on an even input. Without: 2x2 average pooling.
/// State-dict key: <c>conv</c> (with a conv only).
/// </summary>
public sealed class Downsample : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are state-dict keys
    private readonly Conv2d? conv;
#pragma warning restore IDE1006

    public Downsample(int channels, bool withConv) : base(nameof(Downsample))
    {
        if (withConv) conv = Init.Conv(channels, channels, 3, stride: 2, padding: 0);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (conv is null) return nn.functional.avg_pool2d(x, 2, 2);
        using var scope = NewDisposeScope();
        var padded = nn.functional.pad(x, [0, 1, 0, 1]);
        return SafeConv.Forward(conv, padded).MoveToOuterDisposeScope();
    }
}

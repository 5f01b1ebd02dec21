using Ddpm.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Models;

/// <summary>
/// Doubles the feature map: nearest-neighbour x2, then (with a conv, the paper) conv3x3.
/// State-dict key: <c>conv</c> (with a conv only).
/// </summary>
public sealed class Upsample : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are state-dict keys
    private readonly Conv2d? conv;
#pragma warning restore IDE1006

    public Upsample(int channels, bool withConv) : base(nameof(Upsample))
    {
        if (withConv) conv = Init.Conv(channels, channels, 3, padding: 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var up = nn.functional.interpolate(x, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest);
        return (conv is null ? up : SafeConv.Forward(conv, up)).MoveToOuterDisposeScope();
    }
}

using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Metrics.Inception;

/// <summary>
/// Mixed_6a, the 35x35 -> 17x17 reduction: 3x3 stride 2 (384), 1x1 -> 3x3 -> 3x3 stride 2 (64 -> 96 -> 96) and a
/// 3x3 stride-2 max pool of the input. Output channels: 480 + inChannels.
/// </summary>
public sealed class InceptionB : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are state-dict keys
    private readonly BasicConv2d branch3x3;
    private readonly BasicConv2d branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3;
#pragma warning restore IDE1006

    public InceptionB(long inChannels) : base(nameof(InceptionB))
    {
        branch3x3 = new BasicConv2d(inChannels, 384, 3, stride: 2);
        branch3x3dbl_1 = new BasicConv2d(inChannels, 64, 1);
        branch3x3dbl_2 = new BasicConv2d(64, 96, 3, padding: 1);
        branch3x3dbl_3 = new BasicConv2d(96, 96, 3, stride: 2);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var b3 = branch3x3.call(x);
        var bd = branch3x3dbl_3.call(branch3x3dbl_2.call(branch3x3dbl_1.call(x)));
        var bp = InceptionPools.MaxReduce(x);
        return cat(new[] { b3, bd, bp }, 1).MoveToOuterDisposeScope();
    }
}

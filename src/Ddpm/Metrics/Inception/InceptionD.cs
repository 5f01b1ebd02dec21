using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Metrics.Inception;

/// <summary>
/// Mixed_7a, the 17x17 -> 8x8 reduction: 1x1 -> 3x3 stride 2 (192 -> 320); 1x1 -> 1x7 -> 7x1 -> 3x3 stride 2 (192 each);
/// 3x3 stride-2 max pool of the input. Output channels: 512 + inChannels.
/// </summary>
public sealed class InceptionD : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are state-dict keys
    private readonly BasicConv2d branch3x3_1, branch3x3_2;
    private readonly BasicConv2d branch7x7x3_1, branch7x7x3_2, branch7x7x3_3, branch7x7x3_4;
#pragma warning restore IDE1006

    public InceptionD(long inChannels) : base(nameof(InceptionD))
    {
        branch3x3_1 = new BasicConv2d(inChannels, 192, 1);
        branch3x3_2 = new BasicConv2d(192, 320, 3, stride: 2);
        branch7x7x3_1 = new BasicConv2d(inChannels, 192, 1);
        branch7x7x3_2 = new BasicConv2d(192, 192, (1, 7), (1, 1), (0, 3));
        branch7x7x3_3 = new BasicConv2d(192, 192, (7, 1), (1, 1), (3, 0));
        branch7x7x3_4 = new BasicConv2d(192, 192, 3, stride: 2);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var b3 = branch3x3_2.call(branch3x3_1.call(x));
        var b7 = branch7x7x3_4.call(branch7x7x3_3.call(branch7x7x3_2.call(branch7x7x3_1.call(x))));
        var bp = InceptionPools.MaxReduce(x);
        return cat(new[] { b3, b7, bp }, 1).MoveToOuterDisposeScope();
    }
}

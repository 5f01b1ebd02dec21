using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Metrics.Inception;

/// <summary>
/// Mixed_5b..5d (35x35): 1x1 (64), 1x1 -> 5x5 (48 -> 64), 1x1 -> 3x3 -> 3x3 (64 -> 96 -> 96) and a pool branch, whose
/// average pool excludes the zero padding from the mean (TF's behaviour; pytorch-fid's FIDInceptionA), then 1x1.
/// Output channels: 224 + poolFeatures.
/// </summary>
public sealed class InceptionA : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are state-dict keys
    private readonly BasicConv2d branch1x1;
    private readonly BasicConv2d branch5x5_1, branch5x5_2;
    private readonly BasicConv2d branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3;
    private readonly BasicConv2d branch_pool;
#pragma warning restore IDE1006

    public InceptionA(long inChannels, long poolFeatures) : base(nameof(InceptionA))
    {
        branch1x1 = new BasicConv2d(inChannels, 64, 1);
        branch5x5_1 = new BasicConv2d(inChannels, 48, 1);
        branch5x5_2 = new BasicConv2d(48, 64, 5, padding: 2);
        branch3x3dbl_1 = new BasicConv2d(inChannels, 64, 1);
        branch3x3dbl_2 = new BasicConv2d(64, 96, 3, padding: 1);
        branch3x3dbl_3 = new BasicConv2d(96, 96, 3, padding: 1);
        branch_pool = new BasicConv2d(inChannels, poolFeatures, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var b1 = branch1x1.call(x);
        var b5 = branch5x5_2.call(branch5x5_1.call(x));
        var b3 = branch3x3dbl_3.call(branch3x3dbl_2.call(branch3x3dbl_1.call(x)));
        var bp = branch_pool.call(InceptionPools.AverageExcludingPadding(x));
        return cat(new[] { b1, b5, b3, bp }, 1).MoveToOuterDisposeScope();
    }
}

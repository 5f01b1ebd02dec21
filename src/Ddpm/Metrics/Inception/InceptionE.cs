using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Metrics.Inception;

/// <summary>How an <see cref="InceptionE"/> block pools its input before the pool branch's 1x1 convolution.</summary>
public enum InceptionEPool
{
    /// <summary>3x3 average, stride 1, padding excluded from the mean: Mixed_7b (pytorch-fid's FIDInceptionE_1).</summary>
    AverageExcludingPadding,

    /// <summary>3x3 max, stride 1, padding 1: Mixed_7c (pytorch-fid's FIDInceptionE_2; the TF graph has a max pool there).</summary>
    Max,
}

/// <summary>
/// Mixed_7b, 7c (8x8): 1x1 (320); 1x1 (384) -> [1x3, 3x1] (384 each); 1x1 -> 3x3 (448 -> 384) -> [1x3, 3x1] (384 each);
/// pool -> 1x1 (192). Output channels: 2048.
/// </summary>
public sealed class InceptionE : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are state-dict keys
    private readonly BasicConv2d branch1x1;
    private readonly BasicConv2d branch3x3_1, branch3x3_2a, branch3x3_2b;
    private readonly BasicConv2d branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3a, branch3x3dbl_3b;
    private readonly BasicConv2d branch_pool;
#pragma warning restore IDE1006
    private readonly InceptionEPool _pool;

    public InceptionE(long inChannels, InceptionEPool pool) : base(nameof(InceptionE))
    {
        _pool = pool;
        branch1x1 = new BasicConv2d(inChannels, 320, 1);
        branch3x3_1 = new BasicConv2d(inChannels, 384, 1);
        branch3x3_2a = new BasicConv2d(384, 384, (1, 3), (1, 1), (0, 1));
        branch3x3_2b = new BasicConv2d(384, 384, (3, 1), (1, 1), (1, 0));
        branch3x3dbl_1 = new BasicConv2d(inChannels, 448, 1);
        branch3x3dbl_2 = new BasicConv2d(448, 384, 3, padding: 1);
        branch3x3dbl_3a = new BasicConv2d(384, 384, (1, 3), (1, 1), (0, 1));
        branch3x3dbl_3b = new BasicConv2d(384, 384, (3, 1), (1, 1), (1, 0));
        branch_pool = new BasicConv2d(inChannels, 192, 1);
        RegisterComponents();
    }

    public InceptionEPool Pool => _pool;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var b1 = branch1x1.call(x);
        var s = branch3x3_1.call(x);
        var b3 = cat(new[] { branch3x3_2a.call(s), branch3x3_2b.call(s) }, 1);
        var d = branch3x3dbl_2.call(branch3x3dbl_1.call(x));
        var bd = cat(new[] { branch3x3dbl_3a.call(d), branch3x3dbl_3b.call(d) }, 1);
        var pooled = _pool == InceptionEPool.Max ? InceptionPools.MaxSame(x) : InceptionPools.AverageExcludingPadding(x);
        var bp = branch_pool.call(pooled);
        return cat(new[] { b1, b3, bd, bp }, 1).MoveToOuterDisposeScope();
    }
}

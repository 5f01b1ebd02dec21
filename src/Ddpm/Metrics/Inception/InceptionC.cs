using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Metrics.Inception;

/// <summary>
/// Mixed_6b..6e (17x17) with factorised 7x7 convolutions: 1x1 (192); 1x1 -> 1x7 -> 7x1 (c7, c7, 192);
/// 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 (c7, c7, c7, c7, 192); average pool excluding padding (pytorch-fid's FIDInceptionC)
/// -> 1x1 (192). Output channels: 768.
/// </summary>
public sealed class InceptionC : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are state-dict keys
    private readonly BasicConv2d branch1x1;
    private readonly BasicConv2d branch7x7_1, branch7x7_2, branch7x7_3;
    private readonly BasicConv2d branch7x7dbl_1, branch7x7dbl_2, branch7x7dbl_3, branch7x7dbl_4, branch7x7dbl_5;
    private readonly BasicConv2d branch_pool;
#pragma warning restore IDE1006

    public InceptionC(long inChannels, long channels7x7) : base(nameof(InceptionC))
    {
        long c7 = channels7x7;
        branch1x1 = new BasicConv2d(inChannels, 192, 1);
        branch7x7_1 = new BasicConv2d(inChannels, c7, 1);
        branch7x7_2 = Row(c7, c7);
        branch7x7_3 = Column(c7, 192);
        branch7x7dbl_1 = new BasicConv2d(inChannels, c7, 1);
        branch7x7dbl_2 = Column(c7, c7);
        branch7x7dbl_3 = Row(c7, c7);
        branch7x7dbl_4 = Column(c7, c7);
        branch7x7dbl_5 = Row(c7, 192);
        branch_pool = new BasicConv2d(inChannels, 192, 1);
        RegisterComponents();
    }

    /// <summary>A 1x7 convolution (one row, seven columns), padded to keep the size.</summary>
    private static BasicConv2d Row(long cin, long cout) => new(cin, cout, (1, 7), (1, 1), (0, 3));

    /// <summary>A 7x1 convolution, padded to keep the size.</summary>
    private static BasicConv2d Column(long cin, long cout) => new(cin, cout, (7, 1), (1, 1), (3, 0));

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var b1 = branch1x1.call(x);
        var b7 = branch7x7_3.call(branch7x7_2.call(branch7x7_1.call(x)));
        var bd = branch7x7dbl_1.call(x);
        bd = branch7x7dbl_5.call(branch7x7dbl_4.call(branch7x7dbl_3.call(branch7x7dbl_2.call(bd))));
        var bp = branch_pool.call(InceptionPools.AverageExcludingPadding(x));
        return cat(new[] { b1, b7, bd, bp }, 1).MoveToOuterDisposeScope();
    }
}

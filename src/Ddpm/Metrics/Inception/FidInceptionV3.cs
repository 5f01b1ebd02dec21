using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Metrics.Inception;

/// <summary>Outputs of <see cref="FidInceptionV3.Run"/> that can be asked for, combined with |.</summary>
[Flags]
public enum InceptionTaps
{
    None = 0,
    /// <summary>(N, 64): the first max pool's 73x73 map, averaged over space (pytorch-fid --dims 64).</summary>
    MaxPool1 = 1,
    /// <summary>(N, 192): the second max pool's 35x35 map, averaged over space (--dims 192).</summary>
    MaxPool2 = 2,
    /// <summary>(N, 768): Mixed_6e's 17x17 map (the aux classifier's input), averaged over space (--dims 768).</summary>
    Mixed6e = 4,
    /// <summary>(N, 2048): the global average pool of Mixed_7c's 8x8 map, "pool3", the standard FID features.</summary>
    Pool3 = 8,
    /// <summary>(N, 1008): fc(pool3) with its bias, the network's own logits.</summary>
    Logits = 16,
    /// <summary>(N, 1008): pool3 times fc.weight transposed, without the bias (torch-fidelity's logits_unbiased, its IS input).</summary>
    LogitsUnbiased = 32,
}

/// <summary>The tensors <see cref="FidInceptionV3.Run"/> computed; null where the tap was not asked for.</summary>
public sealed record InceptionOutputs(Tensor? MaxPool1, Tensor? MaxPool2, Tensor? Mixed6e, Tensor? Pool3, Tensor? Logits, Tensor? LogitsUnbiased);

/// <summary>
/// The FID Inception network: the TF graph "inception-2015-12-05" as pytorch-fid ports it (<c>fid_inception_v3</c>),
/// which differs from torchvision's InceptionV3 in four ways: the pool branch of every InceptionA (Mixed_5b-5d),
/// InceptionC (6b-6e) and the first InceptionE (7b) averages without counting the zero padding; the last InceptionE
/// (7c) max-pools there; fc maps 2048 to 1008 classes; there is no aux classifier. Field names give the state-dict
/// keys of <c>pt_inception-2015-12-05-6726825d.pth</c> (94 convolutions, 94 batch norms, fc). Batch norm always uses
/// its running statistics and no parameter takes gradients: the network only ever evaluates.
/// Input: (N, 3, 299, 299) scaled to [-1, 1] (see <see cref="FidPreprocess"/>).
/// </summary>
public sealed class FidInceptionV3 : nn.Module<Tensor, Tensor>
{
    /// <summary>Classes of the TF graph's classifier (1000 ImageNet classes and 8 unused).</summary>
    public const int Classes = 1008;

    /// <summary>The input size the network and its FID statistics assume.</summary>
    public const int InputSize = 299;

#pragma warning disable IDE1006 // field names are state-dict keys
    private readonly BasicConv2d Conv2d_1a_3x3, Conv2d_2a_3x3, Conv2d_2b_3x3, Conv2d_3b_1x1, Conv2d_4a_3x3;
    private readonly InceptionA Mixed_5b, Mixed_5c, Mixed_5d;
    private readonly InceptionB Mixed_6a;
    private readonly InceptionC Mixed_6b, Mixed_6c, Mixed_6d, Mixed_6e;
    private readonly InceptionD Mixed_7a;
    private readonly InceptionE Mixed_7b, Mixed_7c;
    private readonly Linear fc;
#pragma warning restore IDE1006

    /// <summary>The architecture with TorchSharp's default initialisation; load weights with <see cref="InceptionWeights.Load"/>.</summary>
    public FidInceptionV3() : base(nameof(FidInceptionV3))
    {
        Conv2d_1a_3x3 = new BasicConv2d(3, 32, 3, stride: 2);
        Conv2d_2a_3x3 = new BasicConv2d(32, 32, 3);
        Conv2d_2b_3x3 = new BasicConv2d(32, 64, 3, padding: 1);
        Conv2d_3b_1x1 = new BasicConv2d(64, 80, 1);
        Conv2d_4a_3x3 = new BasicConv2d(80, 192, 3);
        Mixed_5b = new InceptionA(192, poolFeatures: 32);
        Mixed_5c = new InceptionA(256, poolFeatures: 64);
        Mixed_5d = new InceptionA(288, poolFeatures: 64);
        Mixed_6a = new InceptionB(288);
        Mixed_6b = new InceptionC(768, channels7x7: 128);
        Mixed_6c = new InceptionC(768, channels7x7: 160);
        Mixed_6d = new InceptionC(768, channels7x7: 160);
        Mixed_6e = new InceptionC(768, channels7x7: 192);
        Mixed_7a = new InceptionD(768);
        Mixed_7b = new InceptionE(1280, InceptionEPool.AverageExcludingPadding);
        Mixed_7c = new InceptionE(2048, InceptionEPool.Max);
        fc = nn.Linear(2048, Classes);
        RegisterComponents();
        foreach (var p in parameters()) p.requires_grad = false;
        eval();
    }

    /// <summary>pytorch-fid's block 0: the stem convolutions and the first max pool, (N, 3, 299, 299) to (N, 64, 73, 73).</summary>
    public Tensor ToMaxPool1(Tensor x)
    {
        using var scope = NewDisposeScope();
        x = Conv2d_2b_3x3.call(Conv2d_2a_3x3.call(Conv2d_1a_3x3.call(x)));
        return InceptionPools.MaxReduce(x).MoveToOuterDisposeScope();
    }

    /// <summary>Block 1: two convolutions and the second max pool, to (N, 192, 35, 35).</summary>
    public Tensor ToMaxPool2(Tensor x)
    {
        using var scope = NewDisposeScope();
        x = Conv2d_4a_3x3.call(Conv2d_3b_1x1.call(x));
        return InceptionPools.MaxReduce(x).MoveToOuterDisposeScope();
    }

    /// <summary>Block 2: Mixed_5b to Mixed_6e, to (N, 768, 17, 17).</summary>
    public Tensor ToMixed6e(Tensor x)
    {
        using var scope = NewDisposeScope();
        x = Mixed_5d.call(Mixed_5c.call(Mixed_5b.call(x)));
        x = Mixed_6a.call(x);
        x = Mixed_6e.call(Mixed_6d.call(Mixed_6c.call(Mixed_6b.call(x))));
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>Block 3 before its pool: Mixed_7a to Mixed_7c, to (N, 2048, 8, 8).</summary>
    public Tensor ToMixed7c(Tensor x)
    {
        using var scope = NewDisposeScope();
        return Mixed_7c.call(Mixed_7b.call(Mixed_7a.call(x))).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Runs the network as far as the deepest tap asked for and returns those taps, each a (N, C) tensor: the maps are
    /// averaged over space as pytorch-fid does for every tap (adaptive average pool to 1x1).
    /// </summary>
    public InceptionOutputs Run(Tensor x, InceptionTaps taps)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.dim() != 4 || x.shape[1] != 3)
            throw new ArgumentException($"FID Inception: input must be (N, 3, H, W), got ({string.Join(", ", x.shape)})", nameof(x));
        if (taps == InceptionTaps.None) return new InceptionOutputs(null, null, null, null, null, null);
        using var scope = NewDisposeScope();
        // Plain NCHW layout: libtorch 2.10's oneDNN gives wrong results here for some channels-last convolutions
        // (measured: 1x1, 64 to 80 channels, Conv2d_3b_1x1's shape), which a permuted input would select.
        x = x.contiguous();
        Tensor? pool1 = null, pool2 = null, mixed6e = null, pool3 = null, logits = null, unbiased = null;
        var h = ToMaxPool1(x);
        if (taps.HasFlag(InceptionTaps.MaxPool1)) pool1 = GlobalAverage(h).MoveToOuterDisposeScope();
        if (NeedsBeyond(taps, InceptionTaps.MaxPool1))
        {
            h = ToMaxPool2(h);
            if (taps.HasFlag(InceptionTaps.MaxPool2)) pool2 = GlobalAverage(h).MoveToOuterDisposeScope();
        }
        if (NeedsBeyond(taps, InceptionTaps.MaxPool2))
        {
            h = ToMixed6e(h);
            if (taps.HasFlag(InceptionTaps.Mixed6e)) mixed6e = GlobalAverage(h).MoveToOuterDisposeScope();
        }
        if (NeedsBeyond(taps, InceptionTaps.Mixed6e))
        {
            var p3 = GlobalAverage(ToMixed7c(h));
            // Dropout sits between pool3 and fc in training only.
            if (taps.HasFlag(InceptionTaps.LogitsUnbiased)) unbiased = p3.matmul(fc.weight!.t()).MoveToOuterDisposeScope();
            if (taps.HasFlag(InceptionTaps.Logits)) logits = fc.call(p3).MoveToOuterDisposeScope();
            if (taps.HasFlag(InceptionTaps.Pool3)) pool3 = p3.MoveToOuterDisposeScope();
        }
        return new InceptionOutputs(pool1, pool2, mixed6e, pool3, logits, unbiased);
    }

    /// <summary>The full network: (N, 3, 299, 299) in [-1, 1] to the (N, 1008) logits, fc with its bias.</summary>
    public override Tensor forward(Tensor x) => Run(x, InceptionTaps.Logits).Logits!;

    /// <summary>Whether a tap deeper than <paramref name="tap"/> is asked for (the flags are numbered in network order).</summary>
    private static bool NeedsBeyond(InceptionTaps taps, InceptionTaps tap) => (int)taps >= 2 * (int)tap;

    /// <summary>Average over the spatial dimensions to 1x1, flattened: (N, C, H, W) to (N, C).</summary>
    private static Tensor GlobalAverage(Tensor map) => nn.functional.adaptive_avg_pool2d(map, 1).flatten(1);
}

using Ddpm.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static Ddpm.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Ddpm.Models;

/// <summary>
/// Residual block of the paper: GroupNorm -> swish -> conv3x3 -> + dense(swish(temb)) -> GroupNorm -> swish -> dropout
/// -> conv3x3 (zero-initialised), plus a 1x1 <c>nin_shortcut</c> on the input when the channel count changes.
/// State-dict keys: <c>norm1, conv1, temb_proj, norm2, conv2[, nin_shortcut]</c>.
/// </summary>
public sealed class ResnetBlock : nn.Module<Tensor, Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are state-dict keys
    private readonly GroupNorm norm1;
    private readonly Conv2d conv1;
    private readonly Linear temb_proj;
    private readonly GroupNorm norm2;
    private readonly Dropout dropout;
    private readonly Conv2d conv2;
    private readonly Conv2d? nin_shortcut;
#pragma warning restore IDE1006

    public int InChannels { get; }
    public int OutChannels { get; }

    /// <param name="normEps">Epsilon of both GroupNorms (the original's 1e-6 by default).</param>
    public ResnetBlock(int inChannels, int outChannels, int tembChannels, double dropout, int normGroups, double normEps = 1e-6)
        : base(nameof(ResnetBlock))
    {
        InChannels = inChannels;
        OutChannels = outChannels;
        norm1 = Init.Norm(normGroups, inChannels, normEps);
        conv1 = Init.Conv(inChannels, outChannels, 3, padding: 1);
        temb_proj = Init.Dense(tembChannels, outChannels);
        norm2 = Init.Norm(normGroups, outChannels, normEps);
        this.dropout = nn.Dropout(dropout);
        conv2 = Init.Conv(outChannels, outChannels, 3, padding: 1, zero: true);
        if (inChannels != outChannels) nin_shortcut = Init.Conv(inChannels, outChannels, 1);
        RegisterComponents();
    }

    /// <param name="x">(N, InChannels, H, W)</param>
    /// <param name="temb">(N, 4 ch), the time embedding before its swish.</param>
    public override Tensor forward(Tensor x, Tensor temb)
    {
        using var scope = NewDisposeScope();
        // Scalars passed to TorchSharp are explicit and held for the whole call; see Ddpm.Runtime.HeldScalars.
        var h = SafeConv.Forward(conv1, nn.functional.silu(norm1.call(x)));
        h = h.add(temb_proj.call(nn.functional.silu(temb)).unsqueeze(-1).unsqueeze(-1), Int1);   // h + dense(swish(temb))
        h = SafeConv.Forward(conv2, dropout.call(nn.functional.silu(norm2.call(h))));
        var skip = nin_shortcut is null ? x : SafeConv.Forward(nin_shortcut, x);
        return skip.add(h, Int1).MoveToOuterDisposeScope();   // skip + h
    }
}

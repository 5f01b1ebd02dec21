using Ddpm.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static Ddpm.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Ddpm.Models;

/// <summary>
/// Self-attention over the spatial positions, as in the paper: GroupNorm -> q, k, v (1x1 convs) -> softmax(q k^T / sqrt(d))
/// over the key positions -> weighted sum of v -> <c>proj_out</c> (1x1, zero-initialised) -> + input. The paper uses one
/// head (d = C); diffusers' layouts split the C channels into heads of d channels each (head i: channels i d .. (i+1) d - 1),
/// each attending on its own, their outputs concatenated back in channel order before <c>proj_out</c>.
/// State-dict keys: <c>norm, q, k, v, proj_out</c> (the same for any number of heads).
/// </summary>
public sealed class AttnBlock : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are state-dict keys
    private readonly GroupNorm norm;
    private readonly Conv2d q;
    private readonly Conv2d k;
    private readonly Conv2d v;
    private readonly Conv2d proj_out;
#pragma warning restore IDE1006

    public int Channels { get; }

    /// <summary>Number of heads (1: the paper's single head over all channels).</summary>
    public int Heads { get; }

    /// <param name="channels">Channels C in and out.</param>
    /// <param name="normGroups">Groups of the GroupNorm.</param>
    /// <param name="headChannels">Channels per head; 0 (the paper) means one head over all C channels. Must divide C.</param>
    /// <param name="normEps">Epsilon of the GroupNorm (the original's 1e-6 by default).</param>
    public AttnBlock(int channels, int normGroups, int headChannels = 0, double normEps = 1e-6) : base(nameof(AttnBlock))
    {
        if (headChannels < 0 || (headChannels > 0 && channels % headChannels != 0))
            throw new ArgumentOutOfRangeException(nameof(headChannels), headChannels, $"must be 0 or divide the {channels} channels");
        Channels = channels;
        Heads = headChannels > 0 ? channels / headChannels : 1;
        norm = Init.Norm(normGroups, channels, normEps);
        q = Init.Conv(channels, channels, 1);
        k = Init.Conv(channels, channels, 1);
        v = Init.Conv(channels, channels, 1);
        proj_out = Init.Conv(channels, channels, 1, zero: true);
        RegisterComponents();
    }

    /// <param name="x">(N, C, H, W)</param>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0], c = x.shape[1], hh = x.shape[2], ww = x.shape[3];
        // The heads ride in the batch dimension: (N, C, HW) viewed as (N h, d, HW). With one head (h = 1, d = C) these
        // are exactly the single-head operations of the paper's code, so its layout computes what it always did.
        long heads = Heads, d = c / heads;
        var h = norm.call(x);
        var qs = SafeConv.Forward(q, h).reshape(n * heads, d, hh * ww).transpose(1, 2);   // (N h, HW, d)
        var ks = SafeConv.Forward(k, h).reshape(n * heads, d, hh * ww);                   // (N h, d, HW)
        var vs = SafeConv.Forward(v, h).reshape(n * heads, d, hh * ww);                   // (N h, d, HW)
        // Scalars passed to TorchSharp are explicit and held for the whole call; see Ddpm.Runtime.HeldScalars.
        using var scale = (1.0 / Math.Sqrt(d)).ToScalar();
        var w = bmm(qs, ks).mul_(scale).softmax(2);                       // (N h, HW query, HW key)
        var o = bmm(vs, w.transpose(1, 2)).reshape(n, c, hh, ww);         // sum over keys; heads back in channel order
        return x.add(SafeConv.Forward(proj_out, o), Int1).MoveToOuterDisposeScope();   // x + proj_out(o)
    }
}

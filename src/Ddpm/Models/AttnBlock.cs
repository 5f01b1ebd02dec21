using Ddpm.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Models;

/// <summary>
/// Self-attention over the spatial positions, single head, as in the paper: GroupNorm -> q, k, v (1x1 convs) ->
/// softmax(q k^T / sqrt(C)) over the key positions -> weighted sum of v -> <c>proj_out</c> (1x1, zero-initialised) -> + input.
/// State-dict keys: <c>norm, q, k, v, proj_out</c>.
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

    public AttnBlock(int channels, int normGroups) : base(nameof(AttnBlock))
    {
        Channels = channels;
        norm = Init.Norm(normGroups, channels);
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
        var h = norm.call(x);
        var qs = SafeConv.Forward(q, h).reshape(n, c, hh * ww).transpose(1, 2);   // (N, HW, C)
        var ks = SafeConv.Forward(k, h).reshape(n, c, hh * ww);                   // (N, C, HW)
        var vs = SafeConv.Forward(v, h).reshape(n, c, hh * ww);                   // (N, C, HW)
        var w = bmm(qs, ks).mul_(1.0 / Math.Sqrt(c)).softmax(2);     // (N, HW query, HW key)
        var o = bmm(vs, w.transpose(1, 2)).reshape(n, c, hh, ww);     // sum over keys
        return (x + SafeConv.Forward(proj_out, o)).MoveToOuterDisposeScope();
    }
}

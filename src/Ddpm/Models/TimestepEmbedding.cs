using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Models;

/// <summary>
/// Time embedding of the paper's U-Net: sinusoidal(ch) -> dense(4ch) -> swish -> dense(4ch).
/// State-dict keys: <c>dense.0.{weight,bias}</c>, <c>dense.1.{weight,bias}</c>.
/// </summary>
public sealed class TimestepEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly int _channels;
#pragma warning disable IDE1006 // field names are state-dict keys
    private readonly ModuleList<Linear> dense;
#pragma warning restore IDE1006

    /// <param name="channels">Width of the sinusoidal code (ch); the output is 4 ch wide.</param>
    public TimestepEmbedding(int channels) : base(nameof(TimestepEmbedding))
    {
        if (channels < 4) throw new ArgumentOutOfRangeException(nameof(channels), channels, "needs at least 4 channels");
        _channels = channels;
        dense = new ModuleList<Linear>(Init.Dense(channels, 4 * channels), Init.Dense(4 * channels, 4 * channels));
        RegisterComponents();
    }

    /// <summary>Integer timesteps (N) -> embedding (N, 4 ch), of the weights' type (float32 unless the model was cast).</summary>
    public override Tensor forward(Tensor t)
    {
        using var scope = NewDisposeScope();
        var e = Sinusoidal(t, _channels, dense[0].weight!.dtype);
        e = dense[0].call(e);
        e = nn.functional.silu(e);
        e = dense[1].call(e);
        return e.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The original code's sinusoidal code: half = dim/2, freq_i = exp(-i ln(10000) / (half - 1)), output
    /// [sin(t freq), cos(t freq)] (sines first), zero-padded by one column when dim is odd. Computed in float64, returned as
    /// <paramref name="dtype"/> (float32 unless given).
    /// </summary>
    public static Tensor Sinusoidal(Tensor t, int dim, ScalarType dtype = ScalarType.Float32)
    {
        if (dim < 4) throw new ArgumentOutOfRangeException(nameof(dim), dim, "needs at least 4 channels");
        if (t.dim() != 1) throw new ArgumentException($"timesteps must be a vector (N), got shape [{string.Join(", ", t.shape)}]", nameof(t));
        using var scope = NewDisposeScope();
        int half = dim / 2;
        double step = Math.Log(10000.0) / (half - 1);
        var freqs = exp(arange(half, dtype: ScalarType.Float64, device: t.device) * -step);
        var args = t.to(ScalarType.Float64).unsqueeze(1) * freqs.unsqueeze(0);
        var emb = cat([sin(args), cos(args)], 1);
        if (dim % 2 == 1) emb = nn.functional.pad(emb, [0, 1]);
        return emb.to(dtype).MoveToOuterDisposeScope();
    }
}

using TorchSharp;
using TorchSharp.Modules;
using static Ddpm.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Ddpm.Models;

/// <summary>
/// Time embedding of the paper's U-Net: sinusoidal(ch) -> dense(4ch) -> swish -> dense(4ch). The sinusoidal code's order
/// and frequencies are those of the original unless a diffusers layout asks otherwise (<see cref="UNetConfig.FlipSinToCos"/>,
/// <see cref="UNetConfig.FreqShift"/>): the first dense layer's weights only fit the code they were trained on.
/// State-dict keys: <c>dense.0.{weight,bias}</c>, <c>dense.1.{weight,bias}</c>.
/// </summary>
public sealed class TimestepEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly int _channels;
    private readonly bool _flipSinToCos;
    private readonly double _freqShift;
#pragma warning disable IDE1006 // field names are state-dict keys
    private readonly ModuleList<Linear> dense;
#pragma warning restore IDE1006

    /// <param name="channels">Width of the sinusoidal code (ch); the output is 4 ch wide.</param>
    /// <param name="flipSinToCos">Cosines first (diffusers) instead of sines first (the original).</param>
    /// <param name="freqShift">The frequencies' denominator is half - freqShift (the original: 1).</param>
    public TimestepEmbedding(int channels, bool flipSinToCos = false, double freqShift = 1) : base(nameof(TimestepEmbedding))
    {
        if (channels < 4) throw new ArgumentOutOfRangeException(nameof(channels), channels, "needs at least 4 channels");
        CheckFreqShift(channels, freqShift);
        _channels = channels;
        _flipSinToCos = flipSinToCos;
        _freqShift = freqShift;
        dense = new ModuleList<Linear>(Init.Dense(channels, 4 * channels), Init.Dense(4 * channels, 4 * channels));
        RegisterComponents();
    }

    /// <summary>Integer timesteps (N) -> embedding (N, 4 ch), of the weights' type (float32 unless the model was cast).</summary>
    public override Tensor forward(Tensor t)
    {
        using var scope = NewDisposeScope();
        var e = Sinusoidal(t, _channels, dense[0].weight!.dtype, _flipSinToCos, _freqShift);
        e = dense[0].call(e);
        e = nn.functional.silu(e);
        e = dense[1].call(e);
        return e.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The sinusoidal code: half = dim/2, freq_i = exp(-i ln(10000) / (half - <paramref name="freqShift"/>)), output
    /// [sin(t freq), cos(t freq)] (sines first), or [cos, sin] with <paramref name="flipSinToCos"/>, zero-padded by one
    /// column when dim is odd. The defaults are the original code's (shift 1, sines first); diffusers' are shift 0 and
    /// cosines first. Computed in float64, returned as <paramref name="dtype"/> (float32 unless given).
    /// </summary>
    public static Tensor Sinusoidal(Tensor t, int dim, ScalarType dtype = ScalarType.Float32, bool flipSinToCos = false, double freqShift = 1)
    {
        if (dim < 4) throw new ArgumentOutOfRangeException(nameof(dim), dim, "needs at least 4 channels");
        if (t.dim() != 1) throw new ArgumentException($"timesteps must be a vector (N), got shape [{string.Join(", ", t.shape)}]", nameof(t));
        CheckFreqShift(dim, freqShift);
        using var scope = NewDisposeScope();
        int half = dim / 2;
        double step = Math.Log(10000.0) / (half - freqShift);
        // Scalars passed to TorchSharp are explicit and held for the whole call; see Ddpm.Runtime.HeldScalars.
        using var count = half.ToScalar();
        using var minusStep = (-step).ToScalar();
        var freqs = exp(arange(Int0, count, Int1, dtype: ScalarType.Float64, device: t.device) * minusStep);   // arange(half): 0 .. half-1
        var args = t.to(ScalarType.Float64).unsqueeze(1) * freqs.unsqueeze(0);
        var emb = flipSinToCos ? cat([cos(args), sin(args)], 1) : cat([sin(args), cos(args)], 1);
        if (dim % 2 == 1) emb = nn.functional.pad(emb, [0, 1]);
        return emb.to(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>The frequencies' denominator half - shift must be positive (and the shift a number) for finite frequencies.</summary>
    private static void CheckFreqShift(int dim, double freqShift)
    {
        if (!double.IsFinite(freqShift) || dim / 2 - freqShift <= 0)
            throw new ArgumentOutOfRangeException(nameof(freqShift), freqShift, $"must be a number below dim / 2 = {dim / 2}");
    }
}

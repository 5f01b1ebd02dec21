using TorchSharp;

namespace Ddpm.Runtime;

/// <summary>
/// Why the per-step code hands TorchSharp explicit Scalars, and the few constant ones it shares.
/// <para>
/// In TorchSharp 0.107 a <see cref="Scalar"/> is a finalizable object that no dispose scope tracks, and the ops that
/// take one pass its native handle to libtorch without keeping the object alive. A temporary Scalar (the implicit
/// conversion in <c>x * 0.5</c>, <c>x.clamp(-1, 1)</c>, <c>1 - x</c>, <c>x.pow(2)</c>, and the ones TorchSharp makes
/// itself: the alpha = 1 of <c>x + y</c> and <c>x.add(y)</c>, the 2 of <c>x.square()</c>, the 0 and 1 of
/// <c>arange(n)</c>) is unreachable once its handle has been read, so a collection on another thread can finalize it and
/// free the native value while libtorch is about to read it: a crash ("Expected false to be true" in
/// c10::Scalar::toFloat) or, silently, a wrong number.
/// </para>
/// <para>
/// So the network's forward pass, the diffusion's math and the samplers pass only Scalars that stay reachable for the
/// whole call: <c>using var</c> locals (referenced until their Dispose at the end of the scope), or these static ones,
/// which live as long as the process. Each replaces the implicit conversion of a value of the same .NET type (double:
/// float64, int: int32, long: int64), and each operator is replaced by the very op TorchSharp runs for it
/// (<c>x + y</c> is <c>x.add(y, Int1)</c>, <c>a - x</c> for a number a is <c>x.negative().add(a, Int1)</c>,
/// <c>a / x</c> is <c>x.reciprocal().mul(a)</c>), so every result is the same, bit for bit.
/// </para>
/// </summary>
internal static class HeldScalars
{
    /// <summary>int32 0: the start of <c>arange(n)</c>, which runs <c>arange(Int0, n, Int1)</c>.</summary>
    public static readonly Scalar Int0 = 0.ToScalar();

    /// <summary>int32 1: the alpha of <c>x.add(y, Int1)</c>, which is what <c>x + y</c> and <c>x.add(y)</c> run; the step of <c>arange(n)</c>.</summary>
    public static readonly Scalar Int1 = 1.ToScalar();

    /// <summary>int32 2: <c>x.pow(Int2)</c> is what <c>x.square()</c> runs.</summary>
    public static readonly Scalar Int2 = 2.ToScalar();
}

using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Models;

/// <summary>
/// The original code's initialisers (<c>diffusion_tf/nn.py</c>): every conv and dense kernel is drawn by variance scaling
/// (scale 1, mode fan_avg, uniform distribution), biases start at zero, and the layers the paper zero-initialises
/// (scale 1e-10 there) get exact zeros here.
/// </summary>
internal static class Init
{
    /// <summary>
    /// Uniform in [-l, l] with l = sqrt(3 scale / fan_avg), fan_avg = (fan_in + fan_out) / 2, fan_in = in x receptive field,
    /// fan_out = out x receptive field (for a PyTorch-layout weight [out, in, kh, kw] or [out, in]).
    /// </summary>
    public static double VarianceScalingLimit(long[] weightShape, double scale = 1.0)
    {
        long receptive = 1;
        for (int i = 2; i < weightShape.Length; i++) receptive *= weightShape[i];
        double fanIn = weightShape[1] * receptive, fanOut = weightShape[0] * receptive;
        return Math.Sqrt(3.0 * scale / ((fanIn + fanOut) / 2.0));
    }

    public static void VarianceScaling(Tensor weight, Tensor? bias)
    {
        using var _ = no_grad();
        double limit = VarianceScalingLimit(weight.shape);
        weight.uniform_(-limit, limit);
        bias?.zero_();
    }

    public static void Zeros(Tensor weight, Tensor? bias)
    {
        using var _ = no_grad();
        weight.zero_();
        bias?.zero_();
    }

    /// <summary>TorchSharp 0.107.0 leaves GroupNorm's affine parameters uninitialised: set weight 1 and bias 0.</summary>
    public static void GroupNorm(TorchSharp.Modules.GroupNorm norm)
    {
        using var _ = no_grad();
        using var one = 1.0.ToScalar();   // held for the call: see Ddpm.Runtime.HeldScalars
        norm.weight?.fill_(one);
        norm.bias?.zero_();
    }

    /// <summary>A conv with the original's default initialisation (or zeros).</summary>
    public static TorchSharp.Modules.Conv2d Conv(long cin, long cout, long kernel, long stride = 1, long padding = 0, bool zero = false)
    {
        var conv = nn.Conv2d(cin, cout, kernel, stride: stride, padding: padding);
        if (zero) Zeros(conv.weight!, conv.bias);
        else VarianceScaling(conv.weight!, conv.bias);
        return conv;
    }

    /// <summary>A dense layer with the original's default initialisation.</summary>
    public static TorchSharp.Modules.Linear Dense(long cin, long cout)
    {
        var lin = nn.Linear(cin, cout);
        VarianceScaling(lin.weight!, lin.bias);
        return lin;
    }

    /// <summary>
    /// GroupNorm with epsilon <paramref name="eps"/> (the original's 1e-6 unless a layout says otherwise, see
    /// <see cref="UNetConfig.NormEps"/>), affine weight 1 and bias 0 set explicitly.
    /// </summary>
    public static TorchSharp.Modules.GroupNorm Norm(long groups, long channels, double eps = 1e-6)
    {
        var norm = nn.GroupNorm(groups, channels, eps: eps);
        GroupNorm(norm);
        return norm;
    }
}

using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Diffusion;

/// <summary>An eps-model given as a function of (x_t, t), for tests that need a known model output.</summary>
internal sealed class FuncModel : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Func<Tensor, Tensor, Tensor> _f;

    public FuncModel(Func<Tensor, Tensor, Tensor> f) : base("func_model") => _f = f;

    public int Calls { get; set; }

    public override Tensor forward(Tensor x, Tensor t)
    {
        Calls++;
        return _f(x, t);
    }

    public static FuncModel Zero() => new((x, _) => zeros_like(x));
}

internal static class TensorData
{
    public static float[] Floats(Tensor x) => x.cpu().contiguous().data<float>().ToArray();
}

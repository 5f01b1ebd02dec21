using Ddpm.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Metrics.Inception;

/// <summary>
/// Inception's unit layer: a convolution without bias, BatchNorm (eps 0.001, used with its running statistics) and
/// ReLU. State-dict keys: <c>conv.weight</c>, <c>bn.{weight, bias, running_mean, running_var, num_batches_tracked}</c>.
/// </summary>
public sealed class BasicConv2d : nn.Module<Tensor, Tensor>
{
    /// <summary>The batch-norm epsilon of the TF graph the weights come from.</summary>
    public const double BatchNormEps = 0.001;

#pragma warning disable IDE1006 // field names are state-dict keys
    private readonly Conv2d conv;
    private readonly BatchNorm2d bn;
#pragma warning restore IDE1006

    /// <summary>A square kernel.</summary>
    public BasicConv2d(long inChannels, long outChannels, long kernel, long stride = 1, long padding = 0)
        : this(inChannels, outChannels, (kernel, kernel), (stride, stride), (padding, padding)) { }

    /// <summary>Any kernel (height, width), e.g. (1, 7) with padding (0, 3).</summary>
    public BasicConv2d(long inChannels, long outChannels, (long, long) kernel, (long, long) stride, (long, long) padding)
        : base(nameof(BasicConv2d))
    {
        conv = nn.Conv2d(inChannels, outChannels, kernel, stride: stride, padding: padding, bias: false);
        bn = nn.BatchNorm2d(outChannels, eps: BatchNormEps);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = SafeConv.Forward(conv, x);
        // Always the inference form (running statistics), whatever the module's training flag says.
        y = nn.functional.batch_norm(y, bn.running_mean!, bn.running_var!, bn.weight, bn.bias, training: false, eps: BatchNormEps);
        return y.relu_().MoveToOuterDisposeScope();
    }
}

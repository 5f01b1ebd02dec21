using Ddpm.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Training;

/// <summary>
/// Global-norm gradient clipping that leaves the norm on the device. libtorch's C++ <c>clip_grad_norm_</c> (which
/// TorchSharp calls) returns the norm as a double, so it waits for the device on every step; this does the same
/// arithmetic (per-tensor 2-norms, the 2-norm of their stack, coefficient max / (norm + 1e-6) clamped at 1, one
/// in-place multiply per gradient) and returns the norm as a tensor, so a GPU can run ahead of the host.
/// </summary>
public static class GradientClipping
{
    /// <summary>
    /// Scales the gradients of <paramref name="parameters"/> in place so that their joint 2-norm is at most
    /// <paramref name="maxNorm"/> (+infinity: no scaling) and returns the norm before scaling, a scalar tensor on the
    /// gradients' device (null when no parameter has a gradient).
    /// </summary>
    public static Tensor? ClipGlobalNorm(IReadOnlyList<Parameter> parameters, double maxNorm)
    {
        using var scope = NewDisposeScope();
        var grads = new List<Tensor>(parameters.Count);
        foreach (var p in parameters)
            if (p.grad is Tensor g) grads.Add(g);
        if (grads.Count == 0) return null;
        var norms = new Tensor[grads.Count];
        for (int i = 0; i < norms.Length; i++) norms[i] = grads[i].norm(2.0f);
        var total = norms.Length == 1 ? norms[0] : stack(norms).norm(2.0f);
        // (max / (norm + 1e-6)) as libtorch writes it: the reciprocal times the scalar, then clamped at 1.
        // (Scalars held for the whole call: see HeldScalars.)
        using Scalar tiny = 1e-6.ToScalar(), max = maxNorm.ToScalar(), one = 1.0.ToScalar();
        var coefficient = total.add(tiny, HeldScalars.Int1).reciprocal().mul(max).clamp_max(one);
        using (no_grad())
            foreach (var g in grads) g.mul_(coefficient);
        return total.MoveToOuterDisposeScope();
    }
}

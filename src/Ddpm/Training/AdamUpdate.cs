using Ddpm.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Training;

/// <summary>
/// One Adam update (Kingma and Ba 2015, the form PyTorch and TorchSharp use) over the moments a TorchSharp
/// <see cref="Adam"/> holds, with the same operations in the same order as its <c>step()</c>, so the result is
/// bit for bit the same; the optimizer object stays the owner of the moments and of their checkpoint format.
/// <para>
/// Why not <c>step()</c> itself: the temporary Scalars TorchSharp's Adam makes from doubles (seven per parameter per
/// step) can be freed while libtorch reads them (see <see cref="HeldScalars"/>); a training run died that way in
/// <c>addcdiv_</c> ("Expected false to be true ... toFloat"). Here every Scalar is held until its operation returns.
/// </para>
/// </summary>
public static class AdamUpdate
{
    /// <summary>
    /// Updates every parameter of <paramref name="optimizer"/> that has a gradient, with each group's learning rate,
    /// betas and epsilon; increments each updated parameter's step. Weight decay, AMSGrad and maximize are refused
    /// (this project never sets them).
    /// </summary>
    public static void Apply(Adam optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        var states = optimizer.state_dict().State; // the optimizer's own state objects, in parameter order
        int index = 0;
        using var _ = no_grad();
        foreach (var group in optimizer.ParamGroups.Cast<Adam.ParamGroup>())
        {
            var options = group.Options;
            if (options.weight_decay is not (null or 0.0) || options.amsgrad == true || options.maximize == true)
                throw new NotSupportedException("AdamUpdate supports plain Adam only (no weight decay, AMSGrad or maximize)");
            double beta1 = options.beta1!.Value, beta2 = options.beta2!.Value, eps = options.eps!.Value;
            double lr = options.LearningRate!.Value;
            using Scalar beta1Scalar = beta1.ToScalar(), oneMinusBeta1 = (1 - beta1).ToScalar();
            using Scalar beta2Scalar = beta2.ToScalar(), oneMinusBeta2 = (1 - beta2).ToScalar(), epsScalar = eps.ToScalar();
            foreach (var param in group.Parameters)
            {
                var state = (Adam.State)states[index++];
                if (param.grad is not Tensor grad) continue;
                using var scope = NewDisposeScope();
                state.step += 1;
                double biasCorrection1 = 1 - Math.Pow(beta1, state.step);
                double biasCorrection2 = 1 - Math.Pow(beta2, state.step);
                state.exp_avg.mul_(beta1Scalar).add_(grad, oneMinusBeta1);
                state.exp_avg_sq.mul_(beta2Scalar).addcmul_(grad, grad.conj(), oneMinusBeta2);
                using Scalar root = Math.Sqrt(biasCorrection2).ToScalar(), negativeStep = (-(lr / biasCorrection1)).ToScalar();
                var denominator = state.exp_avg_sq.sqrt().div(root).add_(epsScalar, HeldScalars.Int1); // add_(eps) with its alpha held
                param.addcdiv_(state.exp_avg, denominator, negativeStep);
            }
        }
    }
}

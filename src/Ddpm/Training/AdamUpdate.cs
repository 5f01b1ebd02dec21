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
public sealed class AdamUpdate : IDisposable
{
    private sealed record Group(Adam.ParamGroup Options, (Parameter Parameter, Adam.State State)[] Members,
        double Beta1Value, double Beta2Value, Scalar Beta1, Scalar OneMinusBeta1, Scalar Beta2, Scalar OneMinusBeta2, Scalar Eps);

    // Matched once: the optimizer's own state objects (they stay the same when a checkpoint is loaded into them), and
    // the betas and epsilon, which no step changes; the learning rate is read from each group at every update.
    private readonly Group[] _groups;

    /// <summary>
    /// Prepares updates of <paramref name="optimizer"/>'s parameters. Weight decay, AMSGrad and maximize are refused
    /// (this project never sets them).
    /// </summary>
    public AdamUpdate(Adam optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        var states = optimizer.state_dict().State; // the optimizer's own state objects, in parameter order
        int index = 0;
        var groups = new List<Group>();
        foreach (var group in optimizer.ParamGroups.Cast<Adam.ParamGroup>())
        {
            var o = group.Options;
            if (o.weight_decay is not (null or 0.0) || o.amsgrad == true || o.maximize == true)
                throw new NotSupportedException("AdamUpdate supports plain Adam only (no weight decay, AMSGrad or maximize)");
            var members = group.Parameters.Select(p => (p, (Adam.State)states[index++])).ToArray();
            double beta1 = o.beta1!.Value, beta2 = o.beta2!.Value;
            groups.Add(new Group(group, members, beta1, beta2, beta1.ToScalar(), (1 - beta1).ToScalar(), beta2.ToScalar(),
                (1 - beta2).ToScalar(), o.eps!.Value.ToScalar()));
        }
        _groups = groups.ToArray();
    }

    /// <summary>
    /// Updates every parameter that has a gradient, with its group's current learning rate; increments each updated
    /// parameter's step.
    /// </summary>
    public void Apply()
    {
        using var _ = no_grad();
        foreach (var g in _groups)
        {
            double beta1 = g.Beta1Value, beta2 = g.Beta2Value;
            double lr = g.Options.Options.LearningRate!.Value;
            foreach (var (param, state) in g.Members)
            {
                if (param.grad is not Tensor grad) continue;
                using var scope = NewDisposeScope();
                state.step += 1;
                double biasCorrection1 = 1 - Math.Pow(beta1, state.step);
                double biasCorrection2 = 1 - Math.Pow(beta2, state.step);
                state.exp_avg.mul_(g.Beta1).add_(grad, g.OneMinusBeta1);
                state.exp_avg_sq.mul_(g.Beta2).addcmul_(grad, grad.conj(), g.OneMinusBeta2);
                using Scalar root = Math.Sqrt(biasCorrection2).ToScalar(), negativeStep = (-(lr / biasCorrection1)).ToScalar();
                var denominator = state.exp_avg_sq.sqrt().div(root).add_(g.Eps, HeldScalars.Int1); // add_(eps) with its alpha held
                param.addcdiv_(state.exp_avg, denominator, negativeStep);
            }
        }
    }

    public void Dispose()
    {
        foreach (var g in _groups)
            foreach (var s in new[] { g.Beta1, g.OneMinusBeta1, g.Beta2, g.OneMinusBeta2, g.Eps }) s.Dispose();
    }
}

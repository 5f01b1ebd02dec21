using TorchSharp;
using static Ddpm.Runtime.HeldScalars;
using static TorchSharp.torch;
using static Ddpm.Diffusion.VariationalBound;

namespace Ddpm.Diffusion;

/// <summary>The training objective.</summary>
public enum LossType
{
    /// <summary>
    /// L_simple (Ho et al. eq. 14): the mean squared error between the model's prediction and its target (eps, x_0, v or mu;
    /// for mu this is Table 2's unweighted ||mu~ - mu_theta||^2).
    /// </summary>
    Simple,
    /// <summary>
    /// The true variational bound: T L_t in bits/dim for the sampled t, an unbiased estimate of L_0 + ... + L_{T-1} (the
    /// prior term L_T has no parameters). improved-diffusion's RESCALED_KL.
    /// </summary>
    Vlb,
    /// <summary>
    /// L_simple + lambda T L_t with the mean's channels detached in the L_t term, so L_vlb trains only the variance
    /// (Nichol and Dhariwal 2021, lambda = 0.001; improved-diffusion's RESCALED_MSE with a learned variance).
    /// </summary>
    Hybrid,
}

/// <summary>The per-example training loss (shape (N)) and, where computed, its two parts before weighting.</summary>
/// <param name="Loss">What is minimised (averaged over the batch by the trainer).</param>
/// <param name="Mse">The L_simple part before any per-timestep weighting; null for <see cref="LossType.Vlb"/>.</param>
/// <param name="Vb">The bound's term L_t at the sampled t in bits/dim, before the factor T (and lambda); null for <see cref="LossType.Simple"/>.</param>
public sealed record LossTerms(Tensor Loss, Tensor? Mse, Tensor? Vb);

public sealed partial class GaussianDiffusion
{
    /// <summary>
    /// The per-example training loss of <see cref="Loss"/> at x_t = QSample(x0, t, noise), shape (N). No clipping.
    /// For the default (eps, fixed variance, Simple) it is the mean over all non-batch dimensions of
    /// (noise - eps_theta(x_t, t))^2 (eq. 14), times <see cref="Weighting"/>'s weight of t where one is set.
    /// </summary>
    public Tensor TrainingLosses(nn.Module<Tensor, Tensor, Tensor> model, Tensor x0, Tensor t, Tensor noise)
    {
        using var scope = NewDisposeScope();
        var terms = TrainingLossTerms(model, x0, t, noise);
        return terms.Loss.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The training loss and its parts, all shape (N). L_t is in bits/dim: the decoder NLL where t = 0, the KL elsewhere
    /// (see <see cref="VbTermsBpdFromOutput"/>); Vlb minimises T L_t and Hybrid adds lambda T L_t, which equals
    /// improved-diffusion's "vb * T / 1000" for lambda = 0.001. Scaling by T makes the loss an estimate of the whole bound,
    /// so lambda keeps its meaning for any T.
    /// </summary>
    public LossTerms TrainingLossTerms(nn.Module<Tensor, Tensor, Tensor> model, Tensor x0, Tensor t, Tensor noise)
    {
        ArgumentNullException.ThrowIfNull(model);
        CheckSameShape(x0, noise, nameof(noise));
        using var scope = NewDisposeScope();
        var (c, tt) = Prepare(x0, t);
        var xt = QSample(x0, tt, noise);
        var output = model.call(xt, tt);
        var (prediction, variance) = SplitOutput(output, xt);

        Tensor? mse = null, vb = null;
        Tensor loss;
        // Scalars passed to TorchSharp are explicit and held for the whole call; see Ddpm.Runtime.HeldScalars.
        if (Loss == LossType.Vlb)
        {
            vb = VbTermsBpdFromOutput(output, x0, xt, tt, clipDenoised: false).Bpd;
            using var steps = ((double)Timesteps).ToScalar();
            loss = vb * steps;
        }
        else
        {
            mse = MeanFlat((ModelTarget(x0, xt, tt, noise) - prediction).pow(Int2));   // pow(Int2): square() with its 2 held
            // its own handle: each returned tensor is moved out of this scope once
            loss = c.LossWeights is null ? mse.alias() : mse * c.LossWeights.gather(0, tt);
            if (Loss == LossType.Hybrid)
            {
                // Stop-gradient on the mean: the bound's term sees the prediction as a constant.
                var frozen = cat(new[] { prediction.detach(), variance! }, 1);
                vb = VbTermsBpdFromOutput(frozen, x0, xt, tt, clipDenoised: false).Bpd;
                using var weight = (VlbWeight * Timesteps).ToScalar();
                loss = loss.add(weight * vb, Int1);   // loss + lambda T vb
            }
        }
        return new LossTerms(loss.MoveToOuterDisposeScope(), mse?.MoveToOuterDisposeScope(), vb?.MoveToOuterDisposeScope());
    }
}

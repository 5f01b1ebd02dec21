using TorchSharp;
using static Ddpm.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Ddpm.Diffusion;

/// <summary>What the network predicts from (x_t, t).</summary>
public enum PredictionType
{
    /// <summary>The noise eps in x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (Ho et al.'s choice, eq. 11).</summary>
    Epsilon,
    /// <summary>The clean data x_0.</summary>
    StartX,
    /// <summary>The velocity v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0 (Salimans and Ho 2022).</summary>
    Velocity,
    /// <summary>The posterior mean mu~_t(x_t, x_0) itself (Ho et al.'s baseline in Table 2).</summary>
    Mean,
}

/// <summary>
/// The four parameterisations of the model's output and the conversions between them. Every conversion is exact
/// algebra on the schedule's coefficients (float64 values cast to float32 once), so the round trips agree up to float32
/// rounding, amplified only where a coefficient is large (x_0 from eps or from mu at large t).
/// </summary>
public sealed partial class GaussianDiffusion
{
    /// <summary>v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0.</summary>
    public Tensor VelocityFrom(Tensor x0, Tensor t, Tensor noise)
    {
        CheckSameShape(x0, noise, nameof(noise));
        using var scope = NewDisposeScope();
        var (c, tt) = Prepare(x0, t);
        var shape = x0.shape;
        var v = Extract(c.SqrtAlphasCumprod, tt, shape) * noise - Extract(c.SqrtOneMinusAlphasCumprod, tt, shape) * x0;
        return v.MoveToOuterDisposeScope();
    }

    /// <summary>x_0 = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v.</summary>
    public Tensor PredictX0FromVelocity(Tensor xt, Tensor t, Tensor v)
    {
        CheckSameShape(xt, v, nameof(v));
        using var scope = NewDisposeScope();
        var (c, tt) = Prepare(xt, t);
        var shape = xt.shape;
        var x0 = Extract(c.SqrtAlphasCumprod, tt, shape) * xt - Extract(c.SqrtOneMinusAlphasCumprod, tt, shape) * v;
        return x0.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// eps = sqrt(alpha_bar_t) v + sqrt(1 - alpha_bar_t) x_t (from v's definition and eq. 4). Direct, unlike eps recomputed
    /// from x_0, which divides by sqrt(1 - alpha_bar_t) and loses about two digits in float32 near t = 0.
    /// </summary>
    public Tensor PredictEpsFromVelocity(Tensor xt, Tensor t, Tensor v)
    {
        CheckSameShape(xt, v, nameof(v));
        using var scope = NewDisposeScope();
        var (c, tt) = Prepare(xt, t);
        var shape = xt.shape;
        // Scalars passed to TorchSharp are explicit and held for the whole call; see Ddpm.Runtime.HeldScalars.
        // Here and below, a.add(b, Int1) is a + b with its alpha held.
        var eps = (Extract(c.SqrtAlphasCumprod, tt, shape) * v).add(Extract(c.SqrtOneMinusAlphasCumprod, tt, shape) * xt, Int1);
        return eps.MoveToOuterDisposeScope();
    }

    /// <summary>x_0 = (mu - coef2 x_t) / coef1, the posterior mean (eq. 7) solved for x_0.</summary>
    public Tensor PredictX0FromMean(Tensor xt, Tensor t, Tensor mean)
    {
        CheckSameShape(xt, mean, nameof(mean));
        using var scope = NewDisposeScope();
        var (c, tt) = Prepare(xt, t);
        var shape = xt.shape;
        var x0 = (mean - Extract(c.PosteriorMeanCoef2, tt, shape) * xt) / Extract(c.PosteriorMeanCoef1, tt, shape);
        return x0.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// What the model should output (its first C channels) for x_t = QSample(x0, t, noise), by <see cref="Prediction"/>:
    /// noise, x_0, v or the posterior mean mu~_t(x_t, x_0). The regression target of L_simple.
    /// </summary>
    public Tensor ModelTarget(Tensor x0, Tensor xt, Tensor t, Tensor noise)
    {
        CheckSameShape(x0, noise, nameof(noise));
        using var scope = NewDisposeScope();
        var (_, tt) = Prepare(xt, t);
        var target = Prediction switch
        {
            PredictionType.Epsilon => noise.alias(),
            PredictionType.StartX => x0.alias(),
            PredictionType.Velocity => VelocityFrom(x0, tt, noise),
            _ => PosteriorMeanVariance(x0, xt, tt).Mean,
        };
        return target.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Splits a model output into the prediction (the first C channels, C = x_t's channels, dimension 1) and the variance
    /// channels (the other C; null for a fixed variance). Checks the output's shape.
    /// </summary>
    public (Tensor Prediction, Tensor? Variance) SplitOutput(Tensor modelOutput, Tensor xt)
    {
        ArgumentNullException.ThrowIfNull(modelOutput);
        ArgumentNullException.ThrowIfNull(xt);
        var expected = (long[])xt.shape.Clone();
        if (xt.dim() >= 2) expected[1] = ModelOutputChannels(checked((int)xt.shape[1]));
        if (!modelOutput.shape.SequenceEqual(expected))
            throw new ArgumentException($"model output must have shape [{string.Join(", ", expected)}]" +
                (LearnsVariance ? " (twice the channels: the variance is learned)" : "") + $", got [{string.Join(", ", modelOutput.shape)}]");
        if (!LearnsVariance) return (modelOutput.alias(), null);
        long c = xt.shape[1];
        return (modelOutput.narrow(1, 0, c), modelOutput.narrow(1, c, c));
    }

    /// <summary>x_0 implied by the prediction part of the output (no clipping): from eps, as is, from v, or from mu.</summary>
    public Tensor PredictX0FromOutput(Tensor prediction, Tensor xt, Tensor t) => Prediction switch
    {
        PredictionType.Epsilon => PredictX0FromEps(xt, t, prediction),
        PredictionType.StartX => prediction.alias(),
        PredictionType.Velocity => PredictX0FromVelocity(xt, t, prediction),
        _ => PredictX0FromMean(xt, t, prediction),
    };

    /// <summary>
    /// The variance and log variance of p(x_{t-1} | x_t): the fixed table gathered to (N, 1, ..., 1), or from the model's
    /// variance channels (x's shape): Learned takes them as the log variance, LearnedRange interpolates between
    /// log(beta_t) and the clipped log posterior variance (Nichol and Dhariwal 2021, eq. 15).
    /// </summary>
    public (Tensor Variance, Tensor LogVariance) VarianceFromOutput(Tensor? varianceOutput, Tensor xt, Tensor t)
    {
        using var scope = NewDisposeScope();
        var (c, tt) = Prepare(xt, t);
        var shape = xt.shape;
        Tensor logVariance;
        switch (VarianceType)
        {
            case VarianceType.Learned:
                logVariance = Required(varianceOutput).alias();
                break;
            case VarianceType.LearnedRange:
                using (var one = 1.0.ToScalar())
                using (var two = 2.0.ToScalar())
                {
                    // frac = (v + 1) / 2; frac log(beta) + (1 - frac) log(beta~), 1 - frac being -frac + 1 as TorchSharp runs it
                    var frac = Required(varianceOutput).add(one, Int1) / two;
                    logVariance = (frac * Extract(c.LogBetas, tt, shape))
                        .add(frac.negative().add(one, Int1) * Extract(c.PosteriorLogVarianceClipped, tt, shape), Int1);
                }
                break;
            default:
                var variance = Extract(c.ModelVariance, tt, shape);
                logVariance = Extract(c.ModelLogVariance, tt, shape);
                return (variance.MoveToOuterDisposeScope(), logVariance.MoveToOuterDisposeScope());
        }
        return (logVariance.exp().MoveToOuterDisposeScope(), logVariance.MoveToOuterDisposeScope());
    }

    private Tensor Required(Tensor? varianceOutput) =>
        varianceOutput ?? throw new ArgumentException($"variance {VarianceType} needs the model's variance channels");

    /// <summary>
    /// The model's eps and x_0 predictions from its output, whatever it predicts: the common currency of the samplers
    /// (DDIM and friends need both). <paramref name="modelOutput"/> is the model's raw output for (x_t, t), variance channels
    /// included (they are ignored here). x_0 is the prediction converted (from eps, v or mu), clipped to [-1, 1] when
    /// <paramref name="clipDenoised"/>. eps is then the one consistent with that x_0 and x_t:
    /// eps = (sqrt(1 / alpha_bar_t) x_t - x_0) / sqrt(1 / alpha_bar_t - 1), re-derived from the clipped x_0 as
    /// improved-diffusion's DDIM does; except when nothing is clipped, where an eps-predicting model's eps is its output
    /// unchanged and a v-predicting model's eps comes from v directly (<see cref="PredictEpsFromVelocity"/>, which keeps
    /// float32 precision near t = 0). Both have x_t's shape.
    /// </summary>
    public (Tensor Eps, Tensor PredX0) PredictEpsAndX0(Tensor modelOutput, Tensor xt, Tensor t, bool clipDenoised)
    {
        using var scope = NewDisposeScope();
        var (_, tt) = Prepare(xt, t);
        var (prediction, _) = SplitOutput(modelOutput, xt);
        var predX0 = PredictX0FromOutput(prediction, xt, tt);
        if (clipDenoised)
        {
            using var low = (-1.0).ToScalar();
            using var high = 1.0.ToScalar();
            predX0 = predX0.clamp(low, high);
        }
        var eps = (Prediction, clipDenoised) switch
        {
            (PredictionType.Epsilon, false) => prediction,
            (PredictionType.Velocity, false) => PredictEpsFromVelocity(xt, tt, prediction),
            _ => PredictEpsFromX0(xt, tt, predX0),
        };
        return (eps.MoveToOuterDisposeScope(), predX0.MoveToOuterDisposeScope());
    }

    /// <summary><see cref="PredictEpsAndX0(Tensor, Tensor, Tensor, bool)"/> calling the model on (x_t, t) first.</summary>
    public (Tensor Eps, Tensor PredX0) PredictEpsAndX0(nn.Module<Tensor, Tensor, Tensor> model, Tensor xt, Tensor t, bool clipDenoised)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var scope = NewDisposeScope();
        var (_, tt) = Prepare(xt, t);
        var (eps, predX0) = PredictEpsAndX0(model.call(xt, tt), xt, tt, clipDenoised);
        return (eps.MoveToOuterDisposeScope(), predX0.MoveToOuterDisposeScope());
    }
}

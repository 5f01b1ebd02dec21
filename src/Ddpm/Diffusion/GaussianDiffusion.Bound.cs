using TorchSharp;
using static Ddpm.Runtime.HeldScalars;
using static TorchSharp.torch;
using static Ddpm.Diffusion.VariationalBound;

namespace Ddpm.Diffusion;

/// <summary>
/// The variational bound of eq. 5, in bits/dim, as the original code computes it:
/// L = L_T + sum_{t &gt; 1} L_{t-1} + L_0 with L_T = KL(q(x_T | x_0) || N(0, I)),
/// L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) and L_0 = -log p(x_0 | x_1) (the discretised decoder).
/// Each term is averaged over the dimensions and divided by ln 2.
/// </summary>
public sealed partial class GaussianDiffusion
{
    /// <summary>L_T = KL(q(x_T | x_0) || N(0, I)) in bits/dim, shape (N). It has no parameters to learn. (eq. 5)</summary>
    public Tensor PriorBpd(Tensor x0)
    {
        using var scope = NewDisposeScope();
        // Scalars passed to TorchSharp are explicit and held for the whole call; see Ddpm.Runtime.HeldScalars.
        using var last = ((long)(Timesteps - 1)).ToScalar();
        using var ln2 = Ln2.ToScalar();
        var t = full(new[] { x0.shape[0] }, last, dtype: ScalarType.Int64, device: x0.device);
        var (mean, _, logVariance) = QMeanVariance(x0, t);
        var zero = zeros_like(mean);
        var kl = NormalKl(mean, logVariance, zero, zero);
        return (MeanFlat(kl) / ln2).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The bound's term at timestep t in bits/dim, shape (N): the decoder NLL -log p(x_0 | x_1) where t = 0,
    /// KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) elsewhere. Also returns the model's x_0 prediction. (eq. 5)
    /// </summary>
    public (Tensor Bpd, Tensor PredX0) VbTermsBpd(
        nn.Module<Tensor, Tensor, Tensor> model, Tensor x0, Tensor xt, Tensor t, bool clipDenoised)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var scope = NewDisposeScope();
        var (_, tt) = Prepare(xt, t);
        var (bpd, predX0) = VbTermsBpdFromOutput(model.call(xt, tt), x0, xt, tt, clipDenoised);
        return (bpd.MoveToOuterDisposeScope(), predX0.MoveToOuterDisposeScope());
    }

    /// <summary><see cref="VbTermsBpd"/> from a model output computed by the caller.</summary>
    public (Tensor Bpd, Tensor PredX0) VbTermsBpdFromOutput(Tensor modelOutput, Tensor x0, Tensor xt, Tensor t, bool clipDenoised)
    {
        CheckSameShape(xt, x0, nameof(x0));
        using var scope = NewDisposeScope();
        var (_, tt) = Prepare(xt, t);
        var (trueMean, _, trueLogVariance) = PosteriorMeanVariance(x0, xt, tt);
        var (mean, _, logVariance, predX0) = PMeanVarianceFromOutput(modelOutput, xt, tt, clipDenoised);
        using var ln2 = Ln2.ToScalar();
        using var half = 0.5.ToScalar();
        using var zero = 0L.ToScalar();
        var kl = MeanFlat(NormalKl(trueMean, trueLogVariance, mean, logVariance)) / ln2;
        var decoderNll = -MeanFlat(DiscretizedGaussianLogLikelihood(x0, mean, half * logVariance)) / ln2;
        var bpd = where(tt.eq(zero), decoderNll, kl);
        return (bpd.MoveToOuterDisposeScope(), predX0.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The whole bound for a batch of data <paramref name="x0"/> (in [-1, 1], on the 8-bit grid): for t = T-1 down to 0,
    /// x_t is drawn from q(x_t | x_0) with fresh noise and <see cref="VbTermsBpd"/> evaluated; the prior term is added.
    /// The noise comes from a CPU generator seeded with <paramref name="seed"/> (one N(0, I) tensor per timestep, in
    /// that order) and is moved to x0's device, where the model must be. The model runs in eval mode under no_grad (its
    /// training flag is restored). Progress reports the timesteps done; cancellation is checked before each.
    /// <paramref name="clipDenoised"/> clips the predicted x_0 to [-1, 1], as the original evaluation does.
    /// </summary>
    public BoundTerms CalcBpdLoop(nn.Module<Tensor, Tensor, Tensor> model, Tensor x0, long seed, bool clipDenoised = true,
        IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(x0);
        int n = checked((int)x0.shape[0]);
        int steps = Timesteps;
        var terms = new double[n * steps];
        var x0Mse = new double[n * steps];
        var epsMse = new double[n * steps];
        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var noGrad = no_grad();
            using var generator = new Generator(unchecked((ulong)seed), CPU);
            for (int t = steps - 1; t >= 0; t--)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using (NewDisposeScope())
                {
                    using var tValue = ((long)t).ToScalar();
                    var tt = full(new[] { (long)n }, tValue, dtype: ScalarType.Int64, device: x0.device);
                    var noise = randn(x0.shape, dtype: ScalarType.Float32, device: CPU, generator: generator).to(x0.device);
                    var xt = QSample(x0, tt, noise);
                    var (bpd, predX0) = VbTermsBpd(model, x0, xt, tt, clipDenoised);
                    var eps = PredictEpsFromX0(xt, tt, predX0);
                    Scatter(terms, bpd, t, steps);
                    Scatter(x0Mse, MeanFlat((predX0 - x0).pow(Int2)), t, steps);   // pow(Int2): square() with its 2 held
                    Scatter(epsMse, MeanFlat((eps - noise).pow(Int2)), t, steps);
                }
                progress?.Report(steps - t);
            }
            double[] prior;
            using (NewDisposeScope())
                prior = ToDoubles(PriorBpd(x0));
            return BoundTerms.From(prior, terms, x0Mse, epsMse, n, steps);
        }
        finally
        {
            if (wasTraining) model.train();
        }
    }

    private static void Scatter(double[] target, Tensor values, int t, int steps)
    {
        var v = ToDoubles(values);
        for (int i = 0; i < v.Length; i++) target[i * steps + t] = v[i];
    }

    private static double[] ToDoubles(Tensor x) =>
        x.detach().to(ScalarType.Float64).cpu().contiguous().data<double>().ToArray();
}

/// <summary>
/// The bound of a batch, term by term, in bits/dim, as float64 tensors on the CPU. Total = Prior + Kl + Decoder per image.
/// </summary>
public sealed class BoundTerms : IDisposable
{
    private BoundTerms(Tensor total, Tensor prior, Tensor kl, Tensor decoder, Tensor terms, Tensor x0Mse, Tensor epsMse)
    {
        Total = total;
        Prior = prior;
        Kl = kl;
        Decoder = decoder;
        Terms = terms;
        X0Mse = x0Mse;
        EpsMse = epsMse;
    }

    /// <summary>The whole bound per image, shape (N).</summary>
    public Tensor Total { get; }
    /// <summary>L_T = KL(q(x_T | x_0) || N(0, I)) per image, shape (N).</summary>
    public Tensor Prior { get; }
    /// <summary>sum over t = 1..T-1 (0-based) of KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) per image, shape (N).</summary>
    public Tensor Kl { get; }
    /// <summary>L_0 = -log p(x_0 | x_1) per image, shape (N).</summary>
    public Tensor Decoder { get; }
    /// <summary>Every term per image and 0-based timestep, shape (N, T): column 0 is the decoder, the others the KLs.</summary>
    public Tensor Terms { get; }
    /// <summary>Mean squared error of the predicted x_0 per image and timestep, shape (N, T).</summary>
    public Tensor X0Mse { get; }
    /// <summary>Mean squared error of the eps implied by the predicted x_0, per image and timestep, shape (N, T).</summary>
    public Tensor EpsMse { get; }

    internal static BoundTerms From(double[] prior, double[] terms, double[] x0Mse, double[] epsMse, int n, int steps)
    {
        var kl = new double[n];
        var decoder = new double[n];
        var total = new double[n];
        for (int i = 0; i < n; i++)
        {
            double sum = 0;
            for (int t = 1; t < steps; t++) sum += terms[i * steps + t];
            kl[i] = sum;
            decoder[i] = terms[i * steps];
            total[i] = prior[i] + sum + decoder[i];
        }
        Tensor Vec(double[] v) => tensor(v, dtype: ScalarType.Float64);
        Tensor Mat(double[] v) => tensor(v, new long[] { n, steps }, dtype: ScalarType.Float64);
        var result = new BoundTerms(Vec(total), Vec(prior), Vec(kl), Vec(decoder), Mat(terms), Mat(x0Mse), Mat(epsMse));
        foreach (var x in result.All) x.DetachFromDisposeScope();
        return result;
    }

    private IEnumerable<Tensor> All => new[] { Total, Prior, Kl, Decoder, Terms, X0Mse, EpsMse };

    public void Dispose()
    {
        foreach (var x in All) x.Dispose();
    }
}

using TorchSharp;
using static Ddpm.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Ddpm.Diffusion;

/// <summary>How the reverse process p(x_{t-1} | x_t) chooses its variance.</summary>
public enum VarianceType
{
    /// <summary>
    /// sigma_t^2 = posterior variance beta~_t; log variance = the clipped posterior log variance
    /// (t = 0 borrows t = 1's value).
    /// </summary>
    FixedSmall,
    /// <summary>
    /// sigma_t^2 = beta_t; log variance = log(append(posterior_variance[1], beta[1:])) as in the original code
    /// (log(beta_0) when T = 1). The paper's CIFAR-10 setting.
    /// </summary>
    FixedLarge,
    /// <summary>The model outputs the log variance per element in C extra channels (Ho et al.'s "learned diagonal Sigma").</summary>
    Learned,
    /// <summary>
    /// The model outputs v per element in C extra channels and log sigma^2 = frac log(beta_t) + (1 - frac) log(beta~_t)
    /// with frac = (v + 1) / 2 and beta~_t's clipped log (Nichol and Dhariwal 2021, eq. 15). v = -1 gives FixedSmall;
    /// v = 1 gives log(beta_t), which is FixedLarge for t &gt;= 1 (at t = 0 FixedLarge borrows t = 1's posterior variance).
    /// </summary>
    LearnedRange,
}

/// <summary>
/// The Gaussian diffusion of Ho et al. 2020: forward process, posterior, reverse step, training losses and the variational
/// bound, for a model predicting eps, x_0, v or mu, with a fixed or learned variance (Nichol and Dhariwal 2021). Timesteps are 0-based (t = 0 is the paper's t = 1). Every method takes x of rank >= 2 with the
/// batch first (N, C, H, W images or N, D vectors) and t as an int64 tensor of shape (N) on x's device.
/// Per-timestep coefficients are computed in float64 by <see cref="NoiseSchedule"/>, cast to float32 tensors once
/// per device, and gathered into shape (N, 1, ..., 1) so they broadcast against x. Returned variances and log
/// variances of the fixed-variance Gaussians have that broadcastable shape (N, 1, ..., 1), means have x's shape (and so do
/// learned variances).
/// Each method frees its intermediate tensors and returns its results into the caller's dispose scope.
/// </summary>
public sealed partial class GaussianDiffusion : IDisposable
{
    private readonly object _gate = new();
    private Coefficients[] _tables = [];
    private readonly double[] _modelVariance;
    private readonly double[] _modelLogVariance;
    private readonly double[]? _lossWeights;
    private volatile bool _disposed;

    /// <summary>
    /// A diffusion over <paramref name="schedule"/>. <paramref name="prediction"/> is what the model outputs (its first C
    /// channels when the variance is learned), <paramref name="loss"/> what <see cref="TrainingLosses"/> computes, and
    /// <paramref name="vlbWeight"/> the lambda of the hybrid loss. A learned variance needs the Vlb or Hybrid loss (L_simple
    /// does not train it), and Hybrid needs a learned variance (its L_vlb term trains only the variance).
    /// <paramref name="weighting"/> weighs L_simple's squared error per timestep (none by default: the paper's L_simple).
    /// </summary>
    public GaussianDiffusion(NoiseSchedule schedule, VarianceType varianceType = VarianceType.FixedLarge,
        PredictionType prediction = PredictionType.Epsilon, LossType loss = LossType.Simple, double vlbWeight = DefaultVlbWeight,
        LossWeighting? weighting = null)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        Schedule = schedule;
        VarianceType = varianceType;
        Prediction = prediction;
        Loss = loss;
        VlbWeight = vlbWeight;
        if (!Enum.IsDefined(prediction)) throw new DdpmException($"prediction {prediction}: expected Epsilon, StartX, Velocity or Mean");
        if (!Enum.IsDefined(loss)) throw new DdpmException($"loss {loss}: expected Simple, Vlb or Hybrid");
        if (!double.IsFinite(vlbWeight) || vlbWeight < 0) throw new DdpmException($"vlb weight {vlbWeight}: must be finite and >= 0");
        CheckVarianceAndLoss(varianceType, loss);
        Weighting = weighting ?? LossWeighting.None;
        Weighting.Check(prediction, loss);
        _lossWeights = Weighting.Table(schedule, prediction);
        int n = schedule.Timesteps;
        switch (varianceType)
        {
            case VarianceType.FixedSmall:
            case VarianceType.Learned:
            case VarianceType.LearnedRange:
                _modelVariance = schedule.PosteriorVariance;
                _modelLogVariance = schedule.PosteriorLogVarianceClipped;
                break;
            case VarianceType.FixedLarge:
                _modelVariance = schedule.Betas;
                _modelLogVariance = new double[n];
                for (int t = 1; t < n; t++) _modelLogVariance[t] = Math.Log(schedule.Betas[t]);
                _modelLogVariance[0] = n > 1 ? Math.Log(schedule.PosteriorVariance[1]) : Math.Log(schedule.Betas[0]);
                break;
            default:
                throw new DdpmException($"variance type {varianceType}: expected FixedSmall, FixedLarge, Learned or LearnedRange");
        }
    }

    /// <summary>lambda of the hybrid loss L_simple + lambda L_vlb (Nichol and Dhariwal 2021).</summary>
    public const double DefaultVlbWeight = 0.001;

    public NoiseSchedule Schedule { get; }
    public VarianceType VarianceType { get; }
    /// <summary>What the model predicts (in its first C output channels).</summary>
    public PredictionType Prediction { get; }
    /// <summary>The training loss of <see cref="TrainingLosses"/>.</summary>
    public LossType Loss { get; }
    /// <summary>lambda of the hybrid loss.</summary>
    public double VlbWeight { get; }
    /// <summary>The per-timestep weight of L_simple's squared error.</summary>
    public LossWeighting Weighting { get; }
    public int Timesteps => Schedule.Timesteps;

    /// <summary>Whether the model outputs the variance too (Learned or LearnedRange): it then has twice the data's channels.</summary>
    public bool LearnsVariance => IsLearned(VarianceType);

    /// <summary>Whether <paramref name="variance"/> is learned (Learned or LearnedRange): the model's second C output channels.</summary>
    public static bool IsLearned(VarianceType variance) => variance is VarianceType.Learned or VarianceType.LearnedRange;

    /// <summary>The model's output channels for data with <paramref name="dataChannels"/> channels: doubled when the variance is learned.</summary>
    public int ModelOutputChannels(int dataChannels) => ModelOutputChannels(VarianceType, dataChannels);

    /// <summary>The output channels a model needs under <paramref name="variance"/>: twice <paramref name="dataChannels"/> when it is learned.</summary>
    public static int ModelOutputChannels(VarianceType variance, int dataChannels) => IsLearned(variance) ? 2 * dataChannels : dataChannels;

    /// <summary>
    /// The one check of the variance against the loss: a learned variance needs the vlb or hybrid loss (L_simple does
    /// not train it), and the hybrid loss needs a learned variance (its L_vlb term trains only the variance).
    /// </summary>
    public static void CheckVarianceAndLoss(VarianceType variance, LossType loss)
    {
        if (IsLearned(variance) && loss == LossType.Simple)
            throw DdpmException.ForSetting("variance", $"{Spell(variance)}: a learned variance needs loss hybrid or vlb (L_simple cannot train it)");
        if (!IsLearned(variance) && loss == LossType.Hybrid)
            throw DdpmException.ForSetting("loss", $"hybrid: trains only a learned variance, but variance is {Spell(variance)}: use variance learned-range or learned (or loss simple)");
    }

    /// <summary>fixed-large for FixedLarge: an enum name as the settings spell it.</summary>
    private static string Spell(Enum value) =>
        string.Concat(value.ToString().Select((ch, i) => char.IsUpper(ch) ? (i > 0 ? "-" : "") + char.ToLowerInvariant(ch) : ch.ToString()));

    /// <summary>
    /// The reverse-process variance sigma_t^2 per timestep (float64), as chosen by <see cref="VarianceType"/>.
    /// Only for the fixed variances: a learned variance comes from the model's output.
    /// </summary>
    public IReadOnlyList<double> ModelVariance => LearnsVariance ? throw LearnedVarianceHasNoTable() : _modelVariance;
    /// <summary>The reverse-process log variance per timestep (float64); only for the fixed variances.</summary>
    public IReadOnlyList<double> ModelLogVariance => LearnsVariance ? throw LearnedVarianceHasNoTable() : _modelLogVariance;

    private InvalidOperationException LearnedVarianceHasNoTable() =>
        new($"variance {VarianceType} is the model's output, not a table: use PMeanVariance");

    // ---- forward process -------------------------------------------------------------------------------------

    /// <summary>q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I). (eq. 4)</summary>
    public (Tensor Mean, Tensor Variance, Tensor LogVariance) QMeanVariance(Tensor x0, Tensor t)
    {
        using var scope = torch.NewDisposeScope();
        var (c, tt) = Prepare(x0, t);
        var shape = x0.shape;
        var mean = Extract(c.SqrtAlphasCumprod, tt, shape) * x0;
        var variance = Extract(c.OneMinusAlphasCumprod, tt, shape);
        var logVariance = Extract(c.LogOneMinusAlphasCumprod, tt, shape);
        return (mean.MoveToOuterDisposeScope(), variance.MoveToOuterDisposeScope(), logVariance.MoveToOuterDisposeScope());
    }

    /// <summary>x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise: a draw from q(x_t | x_0). (eq. 4, reparameterised)</summary>
    public Tensor QSample(Tensor x0, Tensor t, Tensor noise)
    {
        CheckSameShape(x0, noise, nameof(noise));
        using var scope = torch.NewDisposeScope();
        var (c, tt) = Prepare(x0, t);
        var shape = x0.shape;
        // Scalars passed to TorchSharp are explicit and held for the whole call; see Ddpm.Runtime.HeldScalars.
        // Here and below, a.add(b, Int1) is a + b with its alpha held.
        var xt = (Extract(c.SqrtAlphasCumprod, tt, shape) * x0).add(Extract(c.SqrtOneMinusAlphasCumprod, tt, shape) * noise, Int1);
        return xt.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// One Markov step x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) noise, a draw from q(x_t | x_{t-1}). (eq. 2)
    /// With 0-based t, xPrev is the state before step t (x_0 data when t = 0).
    /// </summary>
    public Tensor QStep(Tensor xPrev, Tensor t, Tensor noise)
    {
        CheckSameShape(xPrev, noise, nameof(noise));
        using var scope = torch.NewDisposeScope();
        var (c, tt) = Prepare(xPrev, t);
        var shape = xPrev.shape;
        var xt = (Extract(c.SqrtAlphas, tt, shape) * xPrev).add(Extract(c.SqrtBetas, tt, shape) * noise, Int1);
        return xt.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// q(x_{t-1} | x_t, x_0) = N(coef1 x_0 + coef2 x_t, beta~_t I), with the clipped log variance. (eqs. 6-7)
    /// </summary>
    public (Tensor Mean, Tensor Variance, Tensor LogVarianceClipped) PosteriorMeanVariance(Tensor x0, Tensor xt, Tensor t)
    {
        CheckSameShape(x0, xt, nameof(xt));
        using var scope = torch.NewDisposeScope();
        var (c, tt) = Prepare(xt, t);
        var shape = xt.shape;
        var mean = (Extract(c.PosteriorMeanCoef1, tt, shape) * x0).add(Extract(c.PosteriorMeanCoef2, tt, shape) * xt, Int1);
        var variance = Extract(c.PosteriorVariance, tt, shape);
        var logVariance = Extract(c.PosteriorLogVarianceClipped, tt, shape);
        return (mean.MoveToOuterDisposeScope(), variance.MoveToOuterDisposeScope(), logVariance.MoveToOuterDisposeScope());
    }

    /// <summary>x_0 = sqrt(1 / alpha_bar_t) x_t - sqrt(1 / alpha_bar_t - 1) eps. (eq. 4 solved for x_0)</summary>
    public Tensor PredictX0FromEps(Tensor xt, Tensor t, Tensor eps)
    {
        CheckSameShape(xt, eps, nameof(eps));
        using var scope = torch.NewDisposeScope();
        var (c, tt) = Prepare(xt, t);
        var shape = xt.shape;
        var x0 = Extract(c.SqrtRecipAlphasCumprod, tt, shape) * xt - Extract(c.SqrtRecipm1AlphasCumprod, tt, shape) * eps;
        return x0.MoveToOuterDisposeScope();
    }

    /// <summary>eps = (sqrt(1 / alpha_bar_t) x_t - x_0) / sqrt(1 / alpha_bar_t - 1). (eq. 4 solved for eps)</summary>
    public Tensor PredictEpsFromX0(Tensor xt, Tensor t, Tensor x0)
    {
        CheckSameShape(xt, x0, nameof(x0));
        using var scope = torch.NewDisposeScope();
        var (c, tt) = Prepare(xt, t);
        var shape = xt.shape;
        var eps = (Extract(c.SqrtRecipAlphasCumprod, tt, shape) * xt - x0) / Extract(c.SqrtRecipm1AlphasCumprod, tt, shape);
        return eps.MoveToOuterDisposeScope();
    }

    // ---- reverse process -------------------------------------------------------------------------------------

    /// <summary>
    /// p(x_{t-1} | x_t) = N(mu_theta(x_t, t), sigma_t^2 I). x_0 is recovered from the model's prediction (eps, x_0, v or mu,
    /// see <see cref="Prediction"/>) and clipped to [-1, 1] when <paramref name="clipDenoised"/>; mu_theta is the posterior
    /// mean given that x_0 (eq. 11 for eps when no clipping happens), or the model's output itself when it predicts mu.
    /// sigma_t^2 is the fixed table (shape (N, 1, ..., 1)) or comes from the model's extra channels (x's shape). (eqs. 1, 11)
    /// </summary>
    public (Tensor Mean, Tensor Variance, Tensor LogVariance, Tensor PredX0) PMeanVariance(
        nn.Module<Tensor, Tensor, Tensor> model, Tensor xt, Tensor t, bool clipDenoised) =>
        PMeanVariance(model, xt, t, ClipOrNone(clipDenoised));

    /// <summary>
    /// <see cref="PMeanVariance(nn.Module{Tensor, Tensor, Tensor}, Tensor, Tensor, bool)"/> with any processing of the
    /// predicted x_0 (<paramref name="processX0"/>: clipping, dynamic thresholding, or null for none) before the
    /// posterior mean is formed from it.
    /// </summary>
    public (Tensor Mean, Tensor Variance, Tensor LogVariance, Tensor PredX0) PMeanVariance(
        nn.Module<Tensor, Tensor, Tensor> model, Tensor xt, Tensor t, Func<Tensor, Tensor>? processX0)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var scope = torch.NewDisposeScope();
        var (_, tt) = Prepare(xt, t);
        var output = model.call(xt, tt);
        var (mean, variance, logVariance, predX0) = PMeanVarianceFromOutput(output, xt, tt, processX0);
        return (mean.MoveToOuterDisposeScope(), variance.MoveToOuterDisposeScope(),
            logVariance.MoveToOuterDisposeScope(), predX0.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// <see cref="PMeanVariance(nn.Module{Tensor, Tensor, Tensor}, Tensor, Tensor, bool)"/> from a model output computed by
    /// the caller (for example with some channels detached): the same numbers as if the model had returned
    /// <paramref name="modelOutput"/> for (x_t, t).
    /// </summary>
    public (Tensor Mean, Tensor Variance, Tensor LogVariance, Tensor PredX0) PMeanVarianceFromOutput(
        Tensor modelOutput, Tensor xt, Tensor t, bool clipDenoised) =>
        PMeanVarianceFromOutput(modelOutput, xt, t, ClipOrNone(clipDenoised));

    /// <summary>The same with any processing of the predicted x_0 (null for none).</summary>
    public (Tensor Mean, Tensor Variance, Tensor LogVariance, Tensor PredX0) PMeanVarianceFromOutput(
        Tensor modelOutput, Tensor xt, Tensor t, Func<Tensor, Tensor>? processX0)
    {
        using var scope = torch.NewDisposeScope();
        var (_, tt) = Prepare(xt, t);
        var (meanOutput, varianceOutput) = SplitOutput(modelOutput, xt);
        var (variance, logVariance) = VarianceFromOutput(varianceOutput, xt, tt);
        var predX0 = PredictX0FromOutput(meanOutput, xt, tt);
        if (processX0 is not null) predX0 = processX0(predX0);
        // The mean-predicting model gives mu directly (processing changes only the reported x_0, as in the original code).
        var mean = Prediction == PredictionType.Mean ? meanOutput : PosteriorMeanVariance(predX0, xt, tt).Mean;
        return (mean.MoveToOuterDisposeScope(), variance.MoveToOuterDisposeScope(),
            logVariance.MoveToOuterDisposeScope(), predX0.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// One ancestral step x_{t-1} = mu_theta(x_t, t) + [t != 0] exp(0.5 log sigma_t^2) noise (Algorithm 2, eq. 11),
    /// with noise ~ N(0, I) of x's shape supplied by the caller. Also returns the predicted x_0.
    /// </summary>
    public (Tensor Sample, Tensor PredX0) PSample(
        nn.Module<Tensor, Tensor, Tensor> model, Tensor xt, Tensor t, Tensor noise, bool clipDenoised) =>
        PSample(model, xt, t, noise, ClipOrNone(clipDenoised));

    /// <summary>The same step with any processing of the predicted x_0 (clipping, dynamic thresholding, or null for none).</summary>
    public (Tensor Sample, Tensor PredX0) PSample(
        nn.Module<Tensor, Tensor, Tensor> model, Tensor xt, Tensor t, Tensor noise, Func<Tensor, Tensor>? processX0)
    {
        CheckSameShape(xt, noise, nameof(noise));
        using var scope = torch.NewDisposeScope();
        var (_, tt) = Prepare(xt, t);
        var (mean, _, logVariance, predX0) = PMeanVariance(model, xt, tt, processX0);
        using var zero = 0L.ToScalar();
        using var half = 0.5.ToScalar();
        var nonZero = tt.ne(zero).to(xt.dtype).view(BroadcastShape(xt.shape));
        var sample = mean.add(nonZero * (half * logVariance).exp() * noise, Int1);
        return (sample.MoveToOuterDisposeScope(), predX0.MoveToOuterDisposeScope());
    }

    private static readonly Func<Tensor, Tensor> ClipToUnit = x0 =>
    {
        using var low = (-1.0).ToScalar();
        using var high = 1.0.ToScalar();
        return x0.clamp(low, high);
    };

    private static Func<Tensor, Tensor>? ClipOrNone(bool clip) => clip ? ClipToUnit : null;

    // ---- coefficients ----------------------------------------------------------------------------------------

    /// <summary>
    /// Gathers coef[t] for each example and reshapes it to (N, 1, ..., 1) with as many dimensions as xShape.
    /// </summary>
    internal static Tensor Extract(Tensor coef, Tensor t, long[] xShape) =>
        coef.gather(0, t).view(BroadcastShape(xShape));

    private static long[] BroadcastShape(long[] xShape)
    {
        var shape = new long[xShape.Length];
        Array.Fill(shape, 1L);
        shape[0] = xShape[0];
        return shape;
    }

    /// <summary>Checks x and t, and returns the coefficient tensors for x's device and t as int64 on that device.</summary>
    private (Coefficients Coef, Tensor T) Prepare(Tensor x, Tensor t)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(t);
        if (x.dim() < 2)
            throw new ArgumentException($"x must have rank >= 2 (batch first), got shape [{string.Join(", ", x.shape)}]", nameof(x));
        if (t.dim() != 1 || t.shape[0] != x.shape[0])
            throw new ArgumentException($"t must have shape [{x.shape[0]}], got [{string.Join(", ", t.shape)}]", nameof(t));
        if (x.dtype != ScalarType.Float32)
            throw new ArgumentException($"x must be float32, got {x.dtype}", nameof(x));
        var tt = t;
        if (tt.dtype != ScalarType.Int64) tt = tt.to(ScalarType.Int64);
        if (tt.device_type != x.device_type || tt.device_index != x.device_index) tt = tt.to(x.device);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return (CoefficientsFor(x), tt);
    }

    private static void CheckSameShape(Tensor x, Tensor other, string what)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(other);
        if (!x.shape.SequenceEqual(other.shape))
            throw new ArgumentException($"{what} must have shape [{string.Join(", ", x.shape)}], got [{string.Join(", ", other.shape)}]");
    }

    /// <summary>
    /// The coefficient tables for a device: a lock-free scan of a small immutable array on the hot path; the lock is taken
    /// only to build the tables for a device seen for the first time (then the array is replaced, never changed).
    /// </summary>
    private Coefficients CoefficientsFor(Tensor x)
    {
        var type = x.device_type;
        int index = type == DeviceType.CPU ? -1 : x.device_index;
        var tables = Volatile.Read(ref _tables);
        foreach (var c in tables)
            if (c.Type == type && c.Index == index) return c;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            foreach (var c in _tables)
                if (c.Type == type && c.Index == index) return c;
            var created = new Coefficients(Schedule, _modelVariance, _modelLogVariance, _lossWeights, x.device, type, index);
            Volatile.Write(ref _tables, [.. _tables, created]);
            return created;
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            foreach (var c in _tables) c.Dispose();
            Volatile.Write(ref _tables, []);
        }
    }

    /// <summary>The schedule as float32 tensors of shape (T) on one device, owned by no dispose scope.</summary>
    private sealed class Coefficients : IDisposable
    {
        private readonly List<Tensor> _all = new();

        public Coefficients(NoiseSchedule s, double[] modelVariance, double[] modelLogVariance, double[]? lossWeights, Device device, DeviceType type, int index)
        {
            Type = type;
            Index = index;
            int n = s.Timesteps;
            var oneMinus = new double[n];
            var sqrtAlphas = new double[n];
            var sqrtBetas = new double[n];
            var logBetas = new double[n];
            for (int i = 0; i < n; i++)
            {
                logBetas[i] = Math.Log(s.Betas[i]);
                oneMinus[i] = 1.0 - s.AlphasCumprod[i];
                sqrtAlphas[i] = Math.Sqrt(s.Alphas[i]);
                sqrtBetas[i] = Math.Sqrt(s.Betas[i]);
            }
            SqrtAlphasCumprod = Make(s.SqrtAlphasCumprod, device);
            OneMinusAlphasCumprod = Make(oneMinus, device);
            SqrtOneMinusAlphasCumprod = Make(s.SqrtOneMinusAlphasCumprod, device);
            LogOneMinusAlphasCumprod = Make(s.LogOneMinusAlphasCumprod, device);
            SqrtAlphas = Make(sqrtAlphas, device);
            SqrtBetas = Make(sqrtBetas, device);
            LogBetas = Make(logBetas, device);
            SqrtRecipAlphasCumprod = Make(s.SqrtRecipAlphasCumprod, device);
            SqrtRecipm1AlphasCumprod = Make(s.SqrtRecipm1AlphasCumprod, device);
            PosteriorVariance = Make(s.PosteriorVariance, device);
            PosteriorLogVarianceClipped = Make(s.PosteriorLogVarianceClipped, device);
            PosteriorMeanCoef1 = Make(s.PosteriorMeanCoef1, device);
            PosteriorMeanCoef2 = Make(s.PosteriorMeanCoef2, device);
            ModelVariance = Make(modelVariance, device);
            ModelLogVariance = Make(modelLogVariance, device);
            LossWeights = lossWeights is null ? null : Make(lossWeights, device);
        }

        public DeviceType Type { get; }
        /// <summary>The device index; -1 for the CPU.</summary>
        public int Index { get; }
        public Tensor SqrtAlphasCumprod { get; }
        public Tensor OneMinusAlphasCumprod { get; }
        public Tensor SqrtOneMinusAlphasCumprod { get; }
        public Tensor LogOneMinusAlphasCumprod { get; }
        public Tensor SqrtAlphas { get; }
        public Tensor SqrtBetas { get; }
        public Tensor LogBetas { get; }
        public Tensor SqrtRecipAlphasCumprod { get; }
        public Tensor SqrtRecipm1AlphasCumprod { get; }
        public Tensor PosteriorVariance { get; }
        public Tensor PosteriorLogVarianceClipped { get; }
        public Tensor PosteriorMeanCoef1 { get; }
        public Tensor PosteriorMeanCoef2 { get; }
        public Tensor ModelVariance { get; }
        public Tensor ModelLogVariance { get; }
        /// <summary>L_simple's per-timestep weights; null when unweighted.</summary>
        public Tensor? LossWeights { get; }

        // The only place a float64 schedule value becomes float32.
        private Tensor Make(double[] values, Device device)
        {
            var f = new float[values.Length];
            for (int i = 0; i < values.Length; i++) f[i] = (float)values[i];
            Tensor result;
            using (torch.NewDisposeScope())
            {
                result = torch.tensor(f, dtype: ScalarType.Float32).to(device).MoveToOuterDisposeScope();
            }
            result.DetachFromDisposeScope();
            _all.Add(result);
            return result;
        }

        public void Dispose()
        {
            foreach (var t in _all) t.Dispose();
            _all.Clear();
        }
    }
}

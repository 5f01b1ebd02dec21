using Ddpm.Configuration;
using Ddpm.Runs;
using static TorchSharp.torch;

namespace Ddpm.Training;

/// <summary>
/// Draws the timesteps of a training batch and the weight of each example's loss, so that
/// mean(weight * loss) is an unbiased estimate of the loss under uniform t.
/// </summary>
public interface ITimestepSampler
{
    /// <summary>
    /// t for <paramref name="batchSize"/> examples (int64, CPU) and their loss weights (float32, CPU), or null weights
    /// when every weight is 1. All randomness comes from <paramref name="generator"/>.
    /// </summary>
    (Tensor T, Tensor? Weights) Sample(int batchSize, Generator generator);

    /// <summary>Records the per-example losses (unweighted) of the timesteps drawn last.</summary>
    void Update(Tensor t, Tensor losses);
}

/// <summary>t ~ U{0..T-1}, every weight 1 (Ho et al., Algorithm 1).</summary>
public sealed class UniformTimestepSampler : ITimestepSampler
{
    private readonly int _timesteps;

    public UniformTimestepSampler(int timesteps) => _timesteps = timesteps;

    public (Tensor T, Tensor? Weights) Sample(int batchSize, Generator generator) =>
        (randint(0, _timesteps, new long[] { batchSize }, dtype: ScalarType.Int64, generator: generator), null);

    public void Update(Tensor t, Tensor losses) { }
}

/// <summary>
/// Importance sampling of t (Nichol and Dhariwal 2021, section 3.3): p_t proportional to sqrt(E[L_t^2]), estimated from the
/// last 10 losses recorded at t, mixed with the uniform distribution at 0.001; loss weight 1 / (T p_t). Until every t has
/// 10 losses it draws exactly as <see cref="UniformTimestepSampler"/> with weight 1.
/// </summary>
public sealed class LossAwareTimestepSampler : ITimestepSampler
{
    /// <summary>Losses kept per timestep.</summary>
    public const int HistoryPerTerm = 10;
    /// <summary>Probability mass spread uniformly over all timesteps.</summary>
    public const double UniformProbability = 0.001;

    private readonly int _timesteps;
    private readonly double[,] _history;
    private readonly int[] _counts;

    public LossAwareTimestepSampler(int timesteps)
    {
        if (timesteps < 1) throw new ArgumentOutOfRangeException(nameof(timesteps));
        _timesteps = timesteps;
        _history = new double[timesteps, HistoryPerTerm];
        _counts = new int[timesteps];
    }

    /// <summary>True once every timestep has <see cref="HistoryPerTerm"/> losses.</summary>
    public bool WarmedUp => _counts.All(c => c == HistoryPerTerm);

    /// <summary>p_t: sqrt of the mean squared recorded loss, normalised, mixed with uniform; uniform before warm-up.</summary>
    public double[] Probabilities()
    {
        var p = new double[_timesteps];
        if (!WarmedUp)
        {
            Array.Fill(p, 1.0 / _timesteps);
            return p;
        }
        double sum = 0;
        for (int t = 0; t < _timesteps; t++)
        {
            double ms = 0;
            for (int k = 0; k < HistoryPerTerm; k++) ms += _history[t, k] * _history[t, k];
            p[t] = Math.Sqrt(ms / HistoryPerTerm);
            sum += p[t];
        }
        for (int t = 0; t < _timesteps; t++)
            p[t] = (sum > 0 ? p[t] / sum : 1.0 / _timesteps) * (1 - UniformProbability) + UniformProbability / _timesteps;
        return p;
    }

    public (Tensor T, Tensor? Weights) Sample(int batchSize, Generator generator)
    {
        if (!WarmedUp) return (randint(0, _timesteps, new long[] { batchSize }, dtype: ScalarType.Int64, generator: generator), null);
        var p = Probabilities();
        using var probs = tensor(p, dtype: ScalarType.Float64);
        var t = multinomial(probs, batchSize, replacement: true, generator: generator);
        var drawn = t.data<long>().ToArray();
        var w = drawn.Select(i => (float)(1.0 / (_timesteps * p[i]))).ToArray();
        return (t, tensor(w, dtype: ScalarType.Float32));
    }

    public void Update(Tensor t, Tensor losses)
    {
        var ts = t.cpu().to(ScalarType.Int64).data<long>().ToArray();
        var ls = losses.detach().cpu().to(ScalarType.Float64).data<double>().ToArray();
        for (int i = 0; i < ts.Length; i++)
        {
            int k = (int)ts[i];
            if (_counts[k] == HistoryPerTerm)
            {
                for (int j = 0; j < HistoryPerTerm - 1; j++) _history[k, j] = _history[k, j + 1];
                _history[k, HistoryPerTerm - 1] = ls[i];
            }
            else
            {
                _history[k, _counts[k]++] = ls[i];
            }
        }
    }

    /// <summary>A copy of the state, for checkpoints.</summary>
    public TimestepSamplerState GetState() => new()
    {
        Counts = (int[])_counts.Clone(),
        History = Enumerable.Range(0, _timesteps)
            .Select(t => Enumerable.Range(0, _counts[t]).Select(k => _history[t, k]).ToArray()).ToArray(),
    };

    /// <summary>Restores a state saved by <see cref="GetState"/>; throws when it does not fit this T.</summary>
    public void SetState(TimestepSamplerState state, string source)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (state.Counts.Length != _timesteps || state.History.Length != _timesteps)
            throw new DdpmException($"{source}: the timestep sampler's state is for {state.Counts.Length} timesteps, the run has {_timesteps}");
        for (int t = 0; t < _timesteps; t++)
        {
            int c = state.Counts[t];
            if (c < 0 || c > HistoryPerTerm || state.History[t].Length != c)
                throw new DdpmException($"{source}: the timestep sampler's state is corrupt at t = {t}");
            _counts[t] = c;
            for (int k = 0; k < c; k++) _history[t, k] = state.History[t][k];
        }
    }
}

/// <summary>Builds the timestep sampler a run's configuration names.</summary>
public static class TimestepSamplers
{
    public static ITimestepSampler For(TrainConfig c) => c.TimestepSampler switch
    {
        TimestepSamplerKind.Importance => new LossAwareTimestepSampler(c.Timesteps),
        _ => new UniformTimestepSampler(c.Timesteps),
    };
}

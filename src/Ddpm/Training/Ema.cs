using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Training;

/// <summary>
/// Exponential moving average of a model's parameters (never its buffers, which are copied as they are).
/// With warm-up the decay grows with the number of updates, so that short runs already have a useful average:
/// decay(n) = min(maxDecay, 1 - (1 + n / invGamma)^(-power)).
/// </summary>
public sealed class Ema
{
    private readonly double _maxDecay;
    private readonly bool _warmup;
    private readonly double _power;
    private readonly double _invGamma;
    // Matched by name once: the update runs every step and needs no lookups.
    private readonly (Tensor Average, Tensor Source)[] _parameters;
    private readonly (Tensor Average, Tensor Source)[] _buffers;

    public Ema(nn.Module model, nn.Module average, double maxDecay, bool warmup, double power = 0.75, double invGamma = 1.0)
    {
        _maxDecay = maxDecay;
        _warmup = warmup;
        _power = power;
        _invGamma = invGamma;
        var sourceParameters = model.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        _parameters = average.named_parameters().Select(p => ((Tensor)p.parameter, Match(sourceParameters, p.name))).ToArray();
        var sourceBuffers = model.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        _buffers = average.named_buffers().Select(b => (b.buffer, Match(sourceBuffers, b.name))).ToArray();
    }

    private static Tensor Match(Dictionary<string, Tensor> source, string name) =>
        source.TryGetValue(name, out var t) ? t
            : throw new ArgumentException($"the averaged model has '{name}', which the trained model lacks");

    /// <summary>The decay used for the update that follows <paramref name="updatesSoFar"/> earlier updates.</summary>
    public double DecayAt(long updatesSoFar)
    {
        if (!_warmup) return _maxDecay;
        double d = 1 - Math.Pow(1 + updatesSoFar / _invGamma, -_power);
        return Math.Clamp(d, 0.0, _maxDecay);
    }

    /// <summary>average = decay * average + (1 - decay) * parameter, for every parameter.</summary>
    public void Update(long updatesSoFar)
    {
        double decay = DecayAt(updatesSoFar);
        using var _ = no_grad();
        // Scalars held for the whole call (see HeldScalars: TorchSharp does not keep a temporary Scalar alive).
        using Scalar keep = decay.ToScalar(), take = (1 - decay).ToScalar();
        foreach (var (avg, p) in _parameters) avg.mul_(keep).add_(p, take);
        foreach (var (avg, b) in _buffers) avg.copy_(b);
    }

    /// <summary>Makes the average equal to the model (at the start of a run).</summary>
    public void CopyFromModel()
    {
        using var _ = no_grad();
        foreach (var (avg, p) in _parameters) avg.copy_(p);
        foreach (var (avg, b) in _buffers) avg.copy_(b);
    }
}

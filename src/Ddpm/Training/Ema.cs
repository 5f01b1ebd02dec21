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
    private readonly nn.Module _model;
    private readonly nn.Module _average;
    private readonly double _maxDecay;
    private readonly bool _warmup;
    private readonly double _power;
    private readonly double _invGamma;

    public Ema(nn.Module model, nn.Module average, double maxDecay, bool warmup, double power = 0.75, double invGamma = 1.0)
    {
        _model = model;
        _average = average;
        _maxDecay = maxDecay;
        _warmup = warmup;
        _power = power;
        _invGamma = invGamma;
    }

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
        using var scope = NewDisposeScope();
        var source = _model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, avg) in _average.named_parameters())
        {
            var p = source[name];
            avg.mul_(decay).add_(p, alpha: 1 - decay);
        }
        var buffers = _model.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        foreach (var (name, buf) in _average.named_buffers())
            buf.copy_(buffers[name]);
    }

    /// <summary>Makes the average equal to the model (at the start of a run).</summary>
    public void CopyFromModel()
    {
        using var _ = no_grad();
        var source = _model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, avg) in _average.named_parameters()) avg.copy_(source[name]);
        var buffers = _model.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        foreach (var (name, buf) in _average.named_buffers()) buf.copy_(buffers[name]);
    }
}

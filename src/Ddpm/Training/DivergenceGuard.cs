using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Training;

/// <summary>
/// Remembers, on the device, the first step whose loss or gradient norm was not finite, so that training needs no
/// read-back per step to notice divergence. The trainer asks <see cref="ThrowIfDiverged"/> whenever it reads figures
/// back and before anything is saved, so a diverged step never reaches a checkpoint, a grid or an evaluation.
/// </summary>
public sealed class DivergenceGuard : IDisposable
{
    private readonly Tensor _firstBadStep; // -1 while every step was finite
    private readonly Tensor _lossThen;
    private readonly Tensor _gradNormThen;

    public DivergenceGuard(Device device)
    {
        _firstBadStep = full(1, -1L, dtype: ScalarType.Int64, device: device);
        _lossThen = zeros(1, dtype: ScalarType.Float64, device: device);
        _gradNormThen = zeros(1, dtype: ScalarType.Float64, device: device);
    }

    /// <summary>
    /// The step of the run's newest checkpoint (saved or resumed from), which a divergence leaves as it is; null while the
    /// run has none, and the message then says so (the run's folder can be started afresh).
    /// </summary>
    public long? LastCheckpointStep { get; set; }

    /// <summary>Records <paramref name="step"/> if its loss or gradient norm is not finite and no earlier step was recorded.</summary>
    public void Observe(long step, Tensor loss, Tensor? gradNorm)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var finite = loss.detach().isfinite();
        if (gradNorm is not null) finite = finite.logical_and(gradNorm.isfinite());
        using Scalar zero = 0.ToScalar(), stepScalar = step.ToScalar(); // held for the whole call: see HeldScalars
        var newlyBad = finite.logical_not().logical_and(_firstBadStep.lt(zero));
        _firstBadStep.copy_(where(newlyBad, full(1, stepScalar, dtype: ScalarType.Int64, device: _firstBadStep.device), _firstBadStep));
        _lossThen.copy_(where(newlyBad, loss.detach().to(ScalarType.Float64), _lossThen));
        if (gradNorm is not null) _gradNormThen.copy_(where(newlyBad, gradNorm.to(ScalarType.Float64), _gradNormThen));
    }

    /// <summary>Reads the record back (one device synchronisation) and throws a one-line error naming the first bad step.</summary>
    public void ThrowIfDiverged()
    {
        long step = _firstBadStep.item<long>();
        if (step < 0) return;
        double loss = _lossThen.item<double>();
        string what = double.IsFinite(loss)
            ? $"the gradient norm is {_gradNormThen.item<double>()}"
            : $"the loss is {loss}";
        string kept = LastCheckpointStep is long saved
            ? $"the checkpoint of step {saved} is kept"
            : "the run has no checkpoint yet, so it starts afresh when trained again";
        throw new DdpmException($"training diverged at step {step}: {what}; {kept} (lower the learning rate or keep gradient clipping on)");
    }

    public void Dispose()
    {
        _firstBadStep.Dispose();
        _lossThen.Dispose();
        _gradNormThen.Dispose();
    }
}

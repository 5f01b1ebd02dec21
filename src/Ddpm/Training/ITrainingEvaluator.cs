using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Training;

/// <summary>
/// Scores a model while it trains (every <see cref="Runs.TrainConfig.EvalEvery"/> steps and at the end). Training
/// only says what it needs; the metrics layer implements it (<c>Ddpm.Metrics.Evaluation.TrainingEvaluator</c>, built
/// from a configuration by <c>EvalMetrics.CreateEvaluator</c>) and the caller hands it to <see cref="Trainer.Evaluator"/>.
/// Training therefore depends on no metric.
/// </summary>
public interface ITrainingEvaluator : IDisposable
{
    /// <summary>The figure that picks <c>checkpoints/best</c> (lower is better); a key of what <see cref="Evaluate"/> returns.</summary>
    string PrimaryMetric { get; }

    /// <summary>Scores <paramref name="model"/> (the EMA network) now: named figures. Progress counts generated images.</summary>
    IReadOnlyDictionary<string, double> Evaluate(nn.Module<Tensor, Tensor, Tensor> model, GaussianDiffusion diffusion,
        IProgress<int>? progress, CancellationToken cancellationToken);
}

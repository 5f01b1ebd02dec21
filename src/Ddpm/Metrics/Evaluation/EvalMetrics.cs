using Ddpm.Configuration;
using Ddpm.Data;
using Ddpm.Diffusion;
using Ddpm.Metrics;
using Ddpm.Metrics.Classifier;
using Ddpm.Metrics.Inception;
using Ddpm.Runs;
using Ddpm.Sampling;
using Ddpm.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Metrics.Evaluation;

/// <summary>Builds the feature extractors and the sampler of <c>eval_every</c> from a run's configuration.</summary>
public static class EvalMetrics
{
    /// <summary>
    /// The evaluator for <paramref name="config"/>: the offline classifier (<see cref="EvalClassifierChoice.Resolve"/>: auto's
    /// rule is written there) and FID when Inception weights are given.
    /// </summary>
    public static TrainingEvaluator CreateEvaluator(TrainConfig config, ImageDataset data, Device device)
    {
        var metrics = new List<EvalMetric>();
        try
        {
            var classifier = config.EvalClassifier.Resolve(config.Data, data.Channels);
            if (classifier is not null) metrics.Add(new EvalMetric("fd_classifier", OpenClassifier(classifier.ToString(), device)));
            if (!string.IsNullOrWhiteSpace(config.InceptionWeights)) metrics.Add(new EvalMetric("fid", OpenInception(config.InceptionWeights, device)));
            return new TrainingEvaluator(config, data, metrics, Generator(config, device));
        }
        catch
        {
            foreach (var m in metrics) m.Extractor.Dispose();
            throw;
        }
    }

    private static IFeatureExtractor OpenClassifier(string nameOrPath, Device device) => ClassifierFeatureExtractor.Load(nameOrPath, device);

    private static IFeatureExtractor OpenInception(string path, Device device) => InceptionFeatureExtractor.Load(path, InceptionFeatureExtractor.DefaultDims, device);

    /// <summary>The evaluation sampler: <see cref="TrainConfig.EvalSampler"/> over <see cref="TrainConfig.EvalSteps"/> steps (0: the sampler's default).</summary>
    public static ISampler Sampler(TrainConfig config) =>
        TrainConfig.BuildSampler(config.EvalSampler, config.EvalSteps, config.EvalSpacing, config.EvalThreshold, config.EvalEta);

    private static TrainingEvaluator.Generator Generator(TrainConfig config, Device device)
    {
        var sampler = Sampler(config);
        return (model, diffusion, shape, seed, ct) =>
        {
            using var result = sampler.Sample(diffusion, model, shape, SamplingRun.Seeded(seed), device, null, ct);
            return result.Samples.detach().clone();
        };
    }
}

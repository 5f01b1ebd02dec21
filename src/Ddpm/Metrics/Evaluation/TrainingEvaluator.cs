using Ddpm.Data;
using Ddpm.Diffusion;
using Ddpm.Runs;
using Ddpm.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Metrics.Evaluation;

/// <summary>One feature space the trainer scores samples in: "fd_classifier" (offline) or "fid" (Inception).</summary>
public sealed record EvalMetric(string Name, IFeatureExtractor Extractor);

/// <summary>
/// Scores a model while it trains (<c>eval_every</c>): draws <see cref="TrainConfig.EvalCount"/> samples with a
/// fixed seed (the same noise at every evaluation, so the curve shows the model changing, not the noise), and for
/// each metric computes the Frechet distance to the first <see cref="TrainConfig.EvalRealCount"/> training images,
/// the real-vs-real floor at the same sample count, and (for classifiers) the score and class imbalance.
/// The real statistics and floors are computed once, at the first evaluation. The caller gives it to
/// <see cref="Trainer.Evaluator"/> (the CLI builds it with <see cref="EvalMetrics.CreateEvaluator"/>).
/// </summary>
public sealed class TrainingEvaluator : ITrainingEvaluator
{
    /// <summary>Draws (n, C, H, W) samples in [-1, 1] from the EMA model with the given seed.</summary>
    public delegate Tensor Generator(nn.Module<Tensor, Tensor, Tensor> model, GaussianDiffusion diffusion, long[] shape, long seed, CancellationToken cancellationToken);

    private readonly TrainConfig _config;
    private readonly ImageDataset _data;
    private readonly IReadOnlyList<EvalMetric> _metrics;
    private readonly Generator _generate;
    private readonly Dictionary<string, (FeatureStatistics Real, double Floor)> _reference = new();

    public TrainingEvaluator(TrainConfig config, ImageDataset data, IReadOnlyList<EvalMetric> metrics, Generator generate)
    {
        if (metrics.Count == 0) throw DdpmException.ForSetting("eval_every", ": no metric to evaluate (eval_classifier is none and no inception_weights given)");
        _config = config;
        _data = data;
        _metrics = metrics;
        _generate = generate;
    }

    /// <summary>The metric that picks the best checkpoint: FID when computed, else the first.</summary>
    public string PrimaryMetric => (_metrics.FirstOrDefault(m => m.Name == "fid") ?? _metrics[0]).Name;

    /// <summary>Scores <paramref name="model"/>; progress counts generated images.</summary>
    public IReadOnlyDictionary<string, double> Evaluate(nn.Module<Tensor, Tensor, Tensor> model, GaussianDiffusion diffusion, IProgress<int>? progress, CancellationToken cancellationToken)
    {
        PrepareReference(cancellationToken);
        int count = _config.EvalCount;
        int per = Math.Max(1, Math.Min(_config.BatchSize, count));
        var features = _metrics.ToDictionary(m => m.Name, _ => new List<Tensor>());
        var logits = _metrics.ToDictionary(m => m.Name, _ => new List<Tensor>());
        try
        {
            for (int done = 0, b = 0; done < count; b++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int n = Math.Min(per, count - done);
                using var scope = NewDisposeScope();
                var images = _generate(model, diffusion, new long[] { n, _data.Channels, _data.Height, _data.Width },
                    EvalSeed(_config) + b, cancellationToken);
                foreach (var m in _metrics)
                {
                    var f = m.Extractor.Extract(images.to(m.Extractor.Device));
                    features[m.Name].Add(f.Features.to(CPU).clone().DetachFromDisposeScope());
                    if (f.Logits is not null) logits[m.Name].Add(f.Logits.to(CPU).clone().DetachFromDisposeScope());
                }
                done += n;
                progress?.Report(done);
            }
            var values = new SortedDictionary<string, double>(StringComparer.Ordinal);
            foreach (var m in _metrics)
            {
                using var scope = NewDisposeScope();
                var all = cat(features[m.Name], 0);
                var (real, floor) = _reference[m.Name];
                values[m.Name] = FrechetDistance.Compute(FeatureStatistics.FromFeatures(all), real);
                values[m.Name + "_floor"] = floor;
                if (logits[m.Name].Count > 0 && m.Extractor.Classes is >= 2 and <= 100)
                {
                    var l = cat(logits[m.Name], 0);
                    values[m.Name + "_score"] = count >= 10 ? InceptionScore.FromLogits(l).Mean : double.NaN;
                    values[m.Name + "_class_imbalance"] = ClassHistogram.FromLogits(l).TotalVariationFromUniform();
                }
            }
            return values;
        }
        finally
        {
            foreach (var t in features.Values.SelectMany(x => x).Concat(logits.Values.SelectMany(x => x))) t.Dispose();
        }
    }

    /// <summary>The seed of the evaluation samples: fixed for a run, apart from the seeds of training and grids.</summary>
    public static long EvalSeed(TrainConfig config) => config.Seed + 1_000_003;

    private void PrepareReference(CancellationToken cancellationToken)
    {
        if (_reference.Count == _metrics.Count) return;
        int realCount = Math.Min(_config.EvalRealCount, _data.Count);
        if (realCount < 2 * _config.EvalCount)
            throw DdpmException.ForSetting("eval_count", $"{_config.EvalCount}: the floor needs twice as many real images, but only {realCount} are used (eval_real_count {_config.EvalRealCount}, {_data.Count} in the data)");
        using var realImages = _data.Images.narrow(0, 0, realCount);
        using var source = ImageSource.FromDataset(new ImageDataset(realImages.alias(), null, _data.Source), _data.Source);
        foreach (var m in _metrics)
        {
            if (_reference.ContainsKey(m.Name)) continue;
            using var f = FeatureCollector.Collect(m.Extractor, source, 100, null, cancellationToken);
            _reference[m.Name] = (f.Statistics(), DomainScores.RealFloor(f.Features, _config.EvalCount, EvalSeed(_config)));
        }
    }

    public void Dispose()
    {
        foreach (var m in _metrics) m.Extractor.Dispose();
    }
}

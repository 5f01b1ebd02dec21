using System.Text.Json;
using System.Text.Json.Serialization;
using Ddpm.Data;
using Ddpm.Diffusion;
using Ddpm.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Pipelines;

/// <summary>A mean over images and its standard error (sample standard deviation / sqrt(N); null when N = 1).</summary>
public sealed record MeanAndError(double Mean, double? StandardError)
{
    public static MeanAndError Of(IReadOnlyList<double> values)
    {
        int n = values.Count;
        if (n == 0) throw new ArgumentException("no values", nameof(values));
        double mean = values.Average();
        if (n == 1) return new MeanAndError(mean, null);
        double ss = values.Sum(v => (v - mean) * (v - mean));
        return new MeanAndError(mean, Math.Sqrt(ss / (n - 1) / n));
    }
}

/// <summary>The variational bound of a set of images under a model, in bits/dim, with its three parts.</summary>
public sealed record NllReport
{
    public string Checkpoint { get; init; } = "";
    public long Step { get; init; }
    public bool Ema { get; init; }
    public string Data { get; init; } = "";
    public int Count { get; init; }
    public int Timesteps { get; init; }
    public string Variance { get; init; } = "";
    public long Seed { get; init; }
    public int BatchSize { get; init; }
    public bool ClipDenoised { get; init; }
    /// <summary>Dimensions per image (C H W): bits/dim times this is bits per image.</summary>
    public long Dims { get; init; }

    /// <summary>The whole bound, prior + KL terms + decoder.</summary>
    public MeanAndError BitsPerDim { get; init; } = new(0, null);
    /// <summary>L_T = KL(q(x_T | x_0) || N(0, I)).</summary>
    public MeanAndError Prior { get; init; } = new(0, null);
    /// <summary>The sum of KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) over t = 2..T (the paper's indices).</summary>
    public MeanAndError Kl { get; init; } = new(0, null);
    /// <summary>L_0 = -log p(x_0 | x_1), the discretised Gaussian decoder.</summary>
    public MeanAndError Decoder { get; init; } = new(0, null);

    /// <summary>Mean over the images of each term, by 0-based timestep (index 0: the decoder).</summary>
    public double[] TermsByTimestep { get; init; } = [];
    /// <summary>The whole bound of each image, in data order.</summary>
    public double[] PerImage { get; init; } = [];

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static NllReport FromJson(string json) =>
        JsonSerializer.Deserialize<NllReport>(json, Json) ?? throw new DdpmException("empty nll report");
}

/// <summary>
/// Computes the variational bound (Ho et al. 2020, eq. 5) of images under a trained model, in bits/dim:
/// <see cref="GaussianDiffusion.CalcBpdLoop"/> over batches, then the mean and standard error over the images.
/// </summary>
public static class LikelihoodEvaluator
{
    /// <summary>
    /// Loads the first <paramref name="count"/> images of <paramref name="data"/> (default: the run's training data,
    /// <see cref="Runs.TrainConfig.Data"/>) at the model's image size and channel count.
    /// </summary>
    public static ImageDataset LoadData(DdpmPipeline pipeline, string? data, int count)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        if (count < 1) throw DdpmException.ForSetting("count", $"{count}: must be at least 1");
        var path = string.IsNullOrWhiteSpace(data) ? pipeline.Config.Data : data;
        if (string.IsNullOrWhiteSpace(path))
            throw new DdpmException($"{pipeline.CheckpointDir}: the run's configuration names no training data; give the data to evaluate");
        var shape = pipeline.ImageShape(count);
        var set = DatasetLoader.Load(path, (int)shape[2], (int)shape[1], count);
        if (set.Count < count)
        {
            var have = set.Count;
            set.Dispose();
            throw DdpmException.ForSetting("count", $"{count}: {path} holds only {have} images");
        }
        return set;
    }

    /// <summary>
    /// The bound of every image in <paramref name="images"/> (N, C, H, W) in [-1, 1]; images are first rounded to the
    /// 8-bit grid (a no-op for 8-bit data at its own size) since the decoder is a distribution over 256 levels.
    /// Batch b (of <paramref name="batchSize"/> images) draws its noise with seed <paramref name="seed"/> + b, so the
    /// same seed and batch size give the same numbers. Progress reports (timesteps done, total) over all batches.
    /// </summary>
    public static NllReport Evaluate(DdpmPipeline pipeline, Tensor images, int batchSize, long seed, bool clipDenoised = true,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        var (terms, byT) = Run(pipeline.Diffusion, pipeline.Model, images, pipeline.Device, batchSize, seed, clipDenoised, progress, cancellationToken);
        return Report(terms, byT, images, pipeline.Diffusion, seed, batchSize, clipDenoised) with
        {
            Checkpoint = pipeline.CheckpointDir,
            Step = pipeline.Step,
        };
    }

    /// <summary>The same for any model and diffusion (used by tests and by <see cref="Evaluate"/>).</summary>
    public static NllReport Evaluate(GaussianDiffusion diffusion, nn.Module<Tensor, Tensor, Tensor> model, Tensor images, Device device,
        int batchSize, long seed, bool clipDenoised = true, IProgress<(int Done, int Total)>? progress = null,
        CancellationToken cancellationToken = default)
    {
        var (terms, byT) = Run(diffusion, model, images, device, batchSize, seed, clipDenoised, progress, cancellationToken);
        return Report(terms, byT, images, diffusion, seed, batchSize, clipDenoised);
    }

    private static NllReport Report(PerImage terms, double[] byT, Tensor images, GaussianDiffusion diffusion,
        long seed, int batchSize, bool clipDenoised) => new()
    {
        Seed = seed,
        BatchSize = batchSize,
        ClipDenoised = clipDenoised,
        Count = terms.Total.Count,
        Timesteps = diffusion.Timesteps,
        Variance = diffusion.VarianceType.ToString(),
        Dims = images.shape.Skip(1).Aggregate(1L, (a, b) => a * b),
        BitsPerDim = MeanAndError.Of(terms.Total),
        Prior = MeanAndError.Of(terms.Prior),
        Kl = MeanAndError.Of(terms.Kl),
        Decoder = MeanAndError.Of(terms.Decoder),
        TermsByTimestep = byT,
        PerImage = terms.Total.ToArray(),
    };

    private sealed record PerImage(List<double> Total, List<double> Prior, List<double> Kl, List<double> Decoder);

    private static (PerImage Terms, double[] ByTimestep) Run(GaussianDiffusion diffusion, nn.Module<Tensor, Tensor, Tensor> model,
        Tensor images, Device device, int batchSize, long seed, bool clipDenoised,
        IProgress<(int Done, int Total)>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() < 2 || images.shape[0] < 1) throw new DdpmException("nll: no images to evaluate");
        if (batchSize < 1) throw DdpmException.ForSetting("batch_size", $"{batchSize}: must be at least 1");
        int n = checked((int)images.shape[0]);
        int steps = diffusion.Timesteps;
        int batches = (n + batchSize - 1) / batchSize;
        int total = batches * steps;
        var result = new PerImage(new(), new(), new(), new());
        var byT = new double[steps];
        for (int b = 0; b < batches; b++)
        {
            int start = b * batchSize, size = Math.Min(batchSize, n - start);
            int offset = b * steps;
            var inner = progress is null ? null : new SyncProgress<int>(done => progress.Report((offset + done, total)));
            using var scope = NewDisposeScope();
            var x0 = VariationalBound.QuantizeTo8Bit(images.narrow(0, start, size).to(ScalarType.Float32).to(device));
            using var terms = diffusion.CalcBpdLoop(model, x0, seed + b, clipDenoised, inner, cancellationToken);
            result.Total.AddRange(Doubles(terms.Total));
            result.Prior.AddRange(Doubles(terms.Prior));
            result.Kl.AddRange(Doubles(terms.Kl));
            result.Decoder.AddRange(Doubles(terms.Decoder));
            var sums = Doubles(terms.Terms.sum(new long[] { 0 }));
            for (int t = 0; t < steps; t++) byT[t] += sums[t];
        }
        for (int t = 0; t < steps; t++) byT[t] /= n;
        return (result, byT);
    }

    private static double[] Doubles(Tensor x) => x.contiguous().data<double>().ToArray();
}

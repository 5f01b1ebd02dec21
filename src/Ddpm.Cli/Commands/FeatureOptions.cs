using System.CommandLine;
using Ddpm.Metrics;
using Ddpm.Metrics.Classifier;
using Ddpm.Metrics.Inception;
using Ddpm.Sampling;
using static TorchSharp.torch;

namespace Ddpm.Cli.Commands;

/// <summary>--dims, --inception-weights and --download-inception: which FID Inception network to load.</summary>
public sealed class InceptionOptions
{
    public Option<int> Dims { get; } = new("--dims") { Description = "Inception feature layer: 64, 192, 768 or 2048 (pool3, the standard)", DefaultValueFactory = _ => 2048 };
    public Option<string?> Weights { get; } = new("--inception-weights")
    {
        Description = $"{InceptionWeights.FileName} (or .safetensors); default: ${InceptionWeights.EnvironmentVariable}, then the cache folder",
    };
    public Option<bool> Download { get; } = new("--download-inception") { Description = "Download the weights into the cache folder first (SHA-256 checked; needs the internet)" };

    public static InceptionOptions Create() => new();

    public void AddTo(Command cmd)
    {
        cmd.Options.Add(Dims);
        cmd.Options.Add(Weights);
        cmd.Options.Add(Download);
    }

    /// <summary>The network chosen; <paramref name="logits"/> false when no Inception Score is asked for (then a small
    /// <c>--dims</c> runs only the first layers).</summary>
    public IFeatureExtractor Open(ParseResult parse, Device device, bool logits)
    {
        string? path = parse.GetValue(Weights);
        InceptionFeatureExtractor.TapFor(parse.GetValue(Dims));
        if (parse.GetValue(Download) && path is null)
            path = InceptionWeights.DownloadAsync().GetAwaiter().GetResult();
        return InceptionFeatureExtractor.Load(path, parse.GetValue(Dims), device, logits);
    }

    /// <summary>The network of <see cref="Open"/>, loaded (or downloaded) only when features are asked for: two .npz
    /// statistics need no weights.</summary>
    public DeferredFeatureExtractor Defer(ParseResult parse, Device device, bool logits) =>
        new(InceptionFeatureExtractor.NameFor(parse.GetValue(Dims)), () => Open(parse, device, logits), parse.GetValue(Dims));
}

/// <summary>--classifier: the offline classifier, shipped by name or as a weights file.</summary>
public static class ClassifierChoice
{
    public static Option<string> Option() => new("--classifier")
    {
        Description = $"Offline classifier: {string.Join(" or ", ClassifierStore.BuiltIn)} (shipped), or a weights file from 'ddpm classifier train'",
        DefaultValueFactory = _ => "mnist",
    };

    public static IFeatureExtractor Open(string nameOrPath, Device device) => ClassifierFeatureExtractor.Load(nameOrPath, device);

    /// <summary>The classifier of <see cref="Open"/>, loaded only when features are asked for (its metadata is read now).</summary>
    public static DeferredFeatureExtractor Defer(string nameOrPath, Device device)
    {
        var info = ClassifierStore.LoadInfo(nameOrPath);
        return new(ClassifierFeatureExtractor.NameFor(info), () => Open(nameOrPath, device), info.Architecture.FeatureDims);
    }
}

/// <summary>The sampler option group (<see cref="SamplerCliOptions"/>) of the evaluation commands: how samples are drawn from checkpoints.</summary>
public sealed class SamplerChoice
{
    public SamplerCliOptions Options { get; } = new(samplerHelp:
        $"Sampler for checkpoints: ddpm (ancestral, all T steps: the paper's numbers), ddim or dpm-solver (registered: {SamplerRegistry.NameList})");

    public void AddTo(Command cmd, EvaluationOptions eval)
    {
        Options.AddTo(cmd);
        eval.Generate = parse =>
        {
            var sampler = Options.Build(parse);
            return (pipe, n, seed, ct) =>
            {
                SamplerCliOptions.Describe(sampler, pipe.Diffusion.Schedule); // checks the settings against T
                return pipe.Sample(n, seed, sampler, n, null, ct);
            };
        };
    }
}

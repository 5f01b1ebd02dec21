using System.Diagnostics;
using Ddpm.Metrics;
using Ddpm.Metrics.Evaluation;
using Ddpm.Metrics.Inception;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.Tests.Metrics.Inception;

/// <summary>
/// Built once for <see cref="PytorchFidTests"/>: the FID Inception network with the fixture's rule weights, those
/// weights as a safetensors file (for the CLI), and the project's features of the fixture's four image folders at 2048
/// and 64 dims, computed as <c>ddpm fid</c> and <c>ddpm stats</c> compute them: <see cref="ImageSource.Open"/>, then
/// <see cref="FeatureCollector.Collect"/> over an <see cref="InceptionFeatureExtractor"/> without logits (no --isc),
/// at the CLI's default batch size of 50. About 36 forward passes of the whole network and 36 of its first layers.
/// </summary>
public sealed class PytorchFidFixture : IDisposable
{
    /// <summary>The fixture's image folders (Fixtures/pytorch-fid/README.md).</summary>
    public static readonly string[] Folders = { "rgb32-a", "rgb32-b", "grey28", "rgb48x32" };

    /// <summary>The two feature sizes the fixture holds activations for.</summary>
    public static readonly int[] Dims = { 2048, 64 };

    /// <summary>The first key in sorted order and its first three values, as the rule built them.</summary>
    public string FirstKey { get; }
    public float[] FirstValues { get; }

    /// <summary>Number of tensors the rule built (counters included).</summary>
    public int TensorCount { get; }

    /// <summary>The network with the rule weights (eval mode, CPU).</summary>
    internal FidInceptionV3 Net { get; } = new();

    /// <summary>The rule weights as a safetensors file in a temporary folder.</summary>
    public string WeightsFile { get; }

    /// <summary>(N, dims) float32 CPU features of each folder at each size.</summary>
    public Dictionary<(string Folder, int Dims), Tensor> Features { get; } = new();

    /// <summary>Seconds spent on building the weights and on the features, for the test log.</summary>
    public double WeightsSeconds { get; }
    public double FeatureSeconds { get; }

    public PytorchFidFixture()
    {
        var clock = Stopwatch.StartNew();
        var weights = PytorchFidRuleWeights.Build();
        var net = Net;
        try
        {
            TensorCount = weights.Count;
            FirstKey = weights.Keys.OrderBy(k => k, StringComparer.Ordinal).First();
            FirstValues = weights[FirstKey].data<float>().Take(3).ToArray();
            InceptionWeights.Apply(net, weights, "rule weights"); // strict: every key and shape of the network
            WeightsFile = Path.Combine(TestUtil.TempDir(), "pytorch-fid-rule.safetensors");
            Safetensors.SaveStateDict(WeightsFile, weights);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
        WeightsSeconds = clock.Elapsed.TotalSeconds;

        clock.Restart();
        foreach (int dims in Dims)
        {
            using var extractor = new InceptionFeatureExtractor(net, dims, CPU, ownsNetwork: false, logits: false);
            foreach (var folder in Folders)
            {
                using var source = ImageSource.Open(FolderPath(folder));
                using var collected = FeatureCollector.Collect(extractor, source, batchSize: 50);
                Features[(folder, dims)] = collected.Features.clone().DetachFromDisposeScope();
            }
        }
        FeatureSeconds = clock.Elapsed.TotalSeconds;
    }

    public static string FolderPath(string folder) => Path.Combine(PytorchFidRuleWeights.FixtureDir, "images", folder);

    /// <summary>pytorch-fid's activations (N, dims) of a folder, read from the fixture's float32 .npy.</summary>
    public static NpyArray Reference(string folder, int dims)
    {
        var path = Path.Combine(PytorchFidRuleWeights.FixtureDir, $"activations-{folder}-d{dims}.npy");
        using var s = File.OpenRead(path);
        return NpzFile.ReadNpy(s, path);
    }

    public void Dispose()
    {
        Net.Dispose();
        foreach (var t in Features.Values) t.Dispose();
    }
}

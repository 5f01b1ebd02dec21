using System.Text.Json;
using static TorchSharp.torch;

namespace Ddpm.Tests.Metrics.Inception;

/// <summary>
/// The FID Inception weights of the pytorch-fid fixture (Fixtures/pytorch-fid/README.md, "The weights rule"), rebuilt
/// from their integer rule: keys sorted in ordinal order, key i filled from the 32-bit LCG x_0 = i + 1,
/// x_{j+1} = (1664525 x_j + 1013904223) mod 2^32 as float32(mean + std sqrt(12) (x_{j+1} / 2^32 - 0.5)), computed in float64.
/// </summary>
internal static class PytorchFidRuleWeights
{
    public static string FixtureDir => Path.Combine(TestUtil.RepoRoot(), "tests", "Ddpm.Tests", "Metrics", "Inception", "Fixtures", "pytorch-fid");

    /// <summary>Keys and shapes of pytorch-fid's FID Inception state dict, from state_dict_shapes.json, in ordinal key order.</summary>
    public static List<(string Key, long[] Shape)> Shapes()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(FixtureDir, "state_dict_shapes.json")));
        return doc.RootElement.EnumerateObject()
            .Select(p => (p.Name, p.Value.EnumerateArray().Select(e => e.GetInt64()).ToArray()))
            .OrderBy(t => t.Name, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>The whole state dict (566 tensors, float32 and the int64 counters), owned by the caller.</summary>
    public static Dictionary<string, Tensor> Build()
    {
        var shapes = Shapes();
        var dict = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (int i = 0; i < shapes.Count; i++)
        {
            var (key, shape) = shapes[i];
            dict[key] = key.EndsWith("num_batches_tracked", StringComparison.Ordinal)
                ? tensor(0L)
                : tensor(Values(i, shape.Aggregate(1L, (a, b) => a * b), Std(key, shape), Mean(key)), shape);
        }
        return dict;
    }

    /// <summary>The README's standard deviations: He for convolutions, sqrt(1/2048) for fc.weight, and fixed ones elsewhere.</summary>
    private static double Std(string key, long[] shape) => key switch
    {
        _ when key.EndsWith("conv.weight", StringComparison.Ordinal) => Math.Sqrt(2.0 / (shape[1] * shape[2] * shape[3])),
        _ when key.EndsWith("bn.weight", StringComparison.Ordinal) => 0.1,
        _ when key.EndsWith("bn.bias", StringComparison.Ordinal) || key.EndsWith("bn.running_mean", StringComparison.Ordinal) => 0.1,
        _ when key.EndsWith("bn.running_var", StringComparison.Ordinal) => 0.25,
        "fc.weight" => Math.Sqrt(1.0 / shape[1]),
        "fc.bias" => 0.01,
        _ => throw new InvalidOperationException($"the rule does not cover {key}"),
    };

    /// <summary>Mean 1 for the batch-norm scales and running variances, 0 elsewhere.</summary>
    private static double Mean(string key) =>
        key.EndsWith("bn.weight", StringComparison.Ordinal) || key.EndsWith("bn.running_var", StringComparison.Ordinal) ? 1.0 : 0.0;

    /// <summary>n values of the rule for the key at sorted position <paramref name="index"/>.</summary>
    public static float[] Values(int index, long n, double std, double mean)
    {
        var values = new float[n];
        uint x = (uint)(index + 1);
        for (long j = 0; j < n; j++)
        {
            x = unchecked(1664525u * x + 1013904223u); // mod 2^32 by uint wrap-around
            values[j] = (float)(mean + std * Math.Sqrt(12.0) * (x / 4294967296.0 - 0.5));
        }
        return values;
    }
}

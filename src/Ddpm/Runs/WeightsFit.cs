using System.Globalization;
using Ddpm.IO;
using Ddpm.Models;
using static TorchSharp.torch;

namespace Ddpm.Runs;

/// <summary>
/// Compares a safetensors file's header (names, shapes, dtypes; no tensor is read) with a network's state dict before
/// loading, so that weights of another network are a one-line error naming the tensors that differ rather than
/// libtorch's text about broadcast shapes.
/// </summary>
internal static class WeightsFit
{
    /// <summary>Mismatches named in the message; the rest are counted.</summary>
    private const int Shown = 3;

    /// <summary>Throws a one-line <see cref="DdpmException"/> unless every tensor of the file fits the network exactly.</summary>
    public static void Check(nn.Module module, string file)
    {
        var inFile = SafetensorsHeader.Read(file);
        var expected = module.state_dict();
        var problems = new List<string>();
        foreach (var (name, tensor) in expected)
        {
            if (!inFile.TryGetValue(name, out var entry)) problems.Add($"{name} {ShapeText(tensor.shape)} missing");
            else if (!entry.Shape.SequenceEqual(tensor.shape)) problems.Add($"{name} has shape {entry.ShapeText}, the network needs {ShapeText(tensor.shape)}");
            else if (entry.Dtype != DtypeName(tensor.dtype)) problems.Add($"{name} is {entry.Dtype}, the network needs {DtypeName(tensor.dtype)}");
        }
        foreach (var (name, entry) in inFile)
            if (!expected.ContainsKey(name)) problems.Add($"{name} {entry.ShapeText} unexpected");
        if (problems.Count == 0) return;
        string more = problems.Count > Shown ? $" (and {problems.Count - Shown} more)" : "";
        throw new DdpmException($"{file}: the weights do not fit the network, {problems.Count} tensor(s) differ: "
            + string.Join("; ", problems.Take(Shown)) + more + (module is UNet ? PresetHint(inFile) : ""));
    }

    /// <summary>
    /// Which U-Net preset the file looks like: presets whose parameter count (from the configuration alone, see
    /// <see cref="ModelStats.CountParameters(UNetConfig)"/>) equals the file's element count, at 1 or 3 channels. The
    /// count does not depend on the image size, as presets keep attention at the same levels for any size.
    /// </summary>
    private static string PresetHint(Dictionary<string, SafetensorsEntry> inFile)
    {
        long total = 0;
        foreach (var entry in inFile.Values) total += entry.Shape.Aggregate(1L, (a, b) => a * b);
        var matches = new List<string>();
        foreach (var name in Presets.Names)
            foreach (int channels in new[] { 1, 3 })
            {
                try
                {
                    if (ModelStats.CountParameters(Presets.Get(name, channels: channels)) == total)
                        matches.Add($"{name} at {channels} channel{(channels == 1 ? "" : "s")}");
                }
                catch (DdpmException) { } // a preset that cannot take these channels is simply no match
            }
        string count = total.ToString("N0", CultureInfo.InvariantCulture);
        return matches.Count == 0
            ? $"; the file's {count} parameters match no preset"
            : $"; the file's {count} parameters match preset {string.Join(" or ", matches)}";
    }

    private static string ShapeText(long[] shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>The safetensors name of a dtype (as TorchSharp writes it).</summary>
    internal static string DtypeName(ScalarType type) => type switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float64 => "F64",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int16 => "I16",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => type.ToString(),
    };
}

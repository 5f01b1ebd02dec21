using System.Reflection;
using System.Security.Cryptography;
using Ddpm.IO;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.Metrics.Classifier;

/// <summary>A classifier and its metadata, as loaded from the store.</summary>
public sealed record LoadedClassifier(ClassifierNet Net, ClassifierInfo Info, string Source);

/// <summary>
/// Classifier weights on disk and in the library: a safetensors file (PyTorch state-dict names) and a JSON sidecar
/// (<see cref="ClassifierInfo"/>) with the same name and the extension .json. Two are built into the library as
/// embedded resources and can be asked for by name: "mnist" and "fashion-mnist".
/// </summary>
public static class ClassifierStore
{
    /// <summary>The names of the built-in classifiers.</summary>
    public static IReadOnlyList<string> BuiltIn { get; } = new[] { "mnist", "fashion-mnist" };

    private const string ResourcePrefix = "Ddpm.Classifiers.";

    /// <summary>The metadata file that belongs to a weights file: the same path with the extension .json.</summary>
    public static string InfoPath(string weightsPath) => Path.ChangeExtension(weightsPath, ".json");

    /// <summary>
    /// Writes the weights (safetensors) and then the metadata (with the weights' SHA-256 filled in) atomically.
    /// <paramref name="path"/> must end in .safetensors.
    /// </summary>
    public static void Save(ClassifierNet net, ClassifierInfo info, string path)
    {
        ArgumentNullException.ThrowIfNull(net);
        ArgumentNullException.ThrowIfNull(info);
        if (!path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            throw new DdpmException($"{path}: the classifier weights file must end in .safetensors");
        byte[] weights;
        using (var buffer = new MemoryStream())
        {
            net.save_safetensors(buffer, leaveOpen: true);
            weights = buffer.ToArray();
        }
        info.WeightsSha256 = Sha256(weights);
        AtomicFile.Write(path, weights);
        AtomicFile.WriteAllText(InfoPath(path), info.ToJson());
    }

    /// <summary>
    /// Loads a built-in classifier by name ("mnist", "fashion-mnist") or a weights file by path (its .json beside it),
    /// checks that the two belong together, and puts the network in eval mode on <paramref name="device"/> (CPU by default).
    /// </summary>
    public static LoadedClassifier Load(string nameOrPath, Device? device = null)
    {
        var (source, infoSource, readWeights, infoBytes) = Locate(nameOrPath);
        var weights = readWeights();
        var info = ClassifierInfo.FromJson(System.Text.Encoding.UTF8.GetString(infoBytes), infoSource);
        string sha = Sha256(weights);
        if (!string.Equals(sha, info.WeightsSha256, StringComparison.OrdinalIgnoreCase))
            throw new DdpmException($"{source}: the weights do not match their metadata {infoSource} (SHA-256 {sha[..12]}..., metadata says {Short(info.WeightsSha256)}); the file is corrupt or from another training run");

        var net = new ClassifierNet(info.Architecture);
        try
        {
            using (var stream = new MemoryStream(weights, writable: false))
                net.load_safetensors(stream, strict: true);
            net.to(device ?? CPU);
            net.eval();
            return new LoadedClassifier(net, info, source);
        }
        catch (Exception e)
        {
            net.Dispose();
            if (e is DdpmException) throw;
            throw new DdpmException($"{source}: cannot load classifier weights ({AtomicFile.OneLine(FirstLine(e.Message))})", e);
        }
    }

    /// <summary>
    /// The metadata of a built-in classifier or of a weights file (its .json beside it), read without loading the
    /// network: what a comparison of precomputed statistics needs to name the features.
    /// </summary>
    public static ClassifierInfo LoadInfo(string nameOrPath)
    {
        var (_, infoSource, _, infoBytes) = Locate(nameOrPath);
        return ClassifierInfo.FromJson(System.Text.Encoding.UTF8.GetString(infoBytes), infoSource);
    }

    /// <summary>Where a classifier's weights and metadata are: the weights are read only when asked for.</summary>
    private static (string Source, string InfoSource, Func<byte[]> Weights, byte[] Info) Locate(string nameOrPath)
    {
        if (string.IsNullOrWhiteSpace(nameOrPath))
            throw new DdpmException($"classifier: give a name ({string.Join(", ", BuiltIn)}) or a .safetensors path");
        if (BuiltIn.Contains(nameOrPath, StringComparer.Ordinal))
        {
            string builtIn = $"built-in classifier '{nameOrPath}'";
            return (builtIn, builtIn, () => ReadResource(nameOrPath + ".safetensors"), ReadResource(nameOrPath + ".json"));
        }
        if (!File.Exists(nameOrPath))
            throw new DdpmException($"classifier not found: {nameOrPath} (built in: {string.Join(", ", BuiltIn)}; or a .safetensors file written by 'ddpm classifier train')");
        string infoSource = InfoPath(nameOrPath);
        if (!File.Exists(infoSource))
            throw new DdpmException($"{nameOrPath}: its metadata file {infoSource} is missing (written beside the weights by 'ddpm classifier train')");
        return (nameOrPath, infoSource, () => ReadFile(nameOrPath), ReadFile(infoSource));
    }

    /// <summary>SHA-256 of bytes as lower-case hex.</summary>
    public static string Sha256(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    private static byte[] ReadResource(string name)
    {
        using var stream = typeof(ClassifierStore).Assembly.GetManifestResourceStream(ResourcePrefix + name)
            ?? throw new DdpmException($"built-in classifier resource {name} is missing from {typeof(ClassifierStore).Assembly.GetName().Name}.dll");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    private static byte[] ReadFile(string path)
    {
        try { return File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DdpmException($"{path}: cannot read ({AtomicFile.OneLine(e.Message)})", e);
        }
    }

    private static string Short(string? s) => string.IsNullOrEmpty(s) ? "(none)" : s.Length > 12 ? s[..12] + "..." : s;

    private static string FirstLine(string s)
    {
        int i = s.IndexOf('\n');
        return i < 0 ? s : s[..i];
    }
}

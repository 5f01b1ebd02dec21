using Ddpm.IO;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.Metrics.Inception;

public static partial class InceptionWeights
{
    /// <summary>A <see cref="FidInceptionV3"/> with the weights of <paramref name="path"/> (see <see cref="Load"/>).</summary>
    public static FidInceptionV3 LoadNetwork(string path)
    {
        var net = new FidInceptionV3();
        try
        {
            Load(net, path);
            return net;
        }
        catch
        {
            net.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Copies the weights of <paramref name="path"/> into <paramref name="net"/>. The file may be a torch.save state
    /// dict (.pth, zip or legacy format) or a safetensors file; the format is read from its first bytes. Strict: every
    /// parameter and batch-norm statistic of the network must be present with its shape, and nothing else may be
    /// (the <c>num_batches_tracked</c> counters may be there or not); otherwise a one-line
    /// <see cref="DdpmException"/> names the file and the first key that is wrong. Nothing is copied unless all is right.
    /// </summary>
    public static void Load(nn.Module net, string path)
    {
        ArgumentNullException.ThrowIfNull(net);
        var stateDict = ReadStateDict(path);
        try
        {
            Apply(net, stateDict, path);
        }
        finally
        {
            foreach (var t in stateDict.Values) t.Dispose();
        }
    }

    /// <summary>The tensors of a .pth or .safetensors file.</summary>
    internal static Dictionary<string, Tensor> ReadStateDict(string path)
    {
        if (!File.Exists(path)) throw new DdpmException($"FID Inception weights not found: {path}");
        if (!IsSafetensors(path)) return PthFile.Read(path);
        try
        {
            return Safetensors.LoadStateDict(path);
        }
        catch (Exception e) when (e is not DdpmException)
        {
            throw new DdpmException($"{path}: cannot read safetensors file: {e.Message.Split('\n')[0]}", e);
        }
    }

    /// <summary>A safetensors file starts with the length of its JSON header (8 bytes, little-endian) and then '{'.</summary>
    private static bool IsSafetensors(string path)
    {
        using var s = File.OpenRead(path);
        Span<byte> head = stackalloc byte[9];
        if (s.Read(head) < 9 || head[8] != (byte)'{') return false;
        ulong n = BitConverter.ToUInt64(head[..8]);
        return n > 1 && n < (ulong)s.Length;
    }

    /// <summary>Checks every key and shape of <paramref name="stateDict"/> against <paramref name="net"/>, then copies.</summary>
    internal static void Apply(nn.Module net, IReadOnlyDictionary<string, Tensor> stateDict, string path)
    {
        var targets = net.state_dict()
            .Where(kv => !IsCounter(kv.Key))
            .ToList();
        foreach (var (key, target) in targets)
        {
            if (!stateDict.TryGetValue(key, out var source))
                throw new DdpmException($"{path}: tensor {key} {Shape(target)} missing: not the FID Inception weights ({FileName})");
            if (!source.shape.SequenceEqual(target.shape))
                throw new DdpmException($"{path}: tensor {key} has shape {Shape(source)}, expected {Shape(target)}: not the FID Inception weights ({FileName})");
            if (!source.is_floating_point())
                throw new DdpmException($"{path}: tensor {key} has type {source.dtype}, expected floating point");
        }
        var known = targets.Select(kv => kv.Key).ToHashSet();
        foreach (var key in stateDict.Keys)
            if (!known.Contains(key) && !IsCounter(key))
                throw new DdpmException($"{path}: unexpected tensor {key}: not the FID Inception weights ({FileName})");

        using var _ = no_grad();
        foreach (var (key, target) in targets) target.copy_(stateDict[key]);
    }

    /// <summary>BatchNorm's num_batches_tracked counter: training bookkeeping, present in some files and not in others.</summary>
    private static bool IsCounter(string key) => key == "num_batches_tracked" || key.EndsWith(".num_batches_tracked", StringComparison.Ordinal);

    private static string Shape(Tensor t) => $"[{string.Join(", ", t.shape)}]";
}

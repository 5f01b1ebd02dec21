using Ddpm.IO;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.Interop;

/// <summary>Reads a state dict from a safetensors file or a <c>torch.save</c> file (zip or legacy format), by its first bytes.</summary>
internal static class TensorFiles
{
    public static Dictionary<string, Tensor> Read(string path)
    {
        if (!File.Exists(path)) throw new DdpmException($"weights file not found: {path}");
        if (!IsTorchSave(path))
        {
            try
            {
                return Safetensors.LoadStateDict(path);
            }
            catch (Exception e) when (e is not DdpmException)
            {
                throw new DdpmException($"{path}: neither a safetensors file nor a torch.save state dict ({AtomicFile.OneLine(e.Message)})", e);
            }
        }
        return PthFile.Read(path);
    }

    /// <summary>
    /// A safetensors file starts with its header's 8-byte length and then the header's opening brace; torch.save writes a
    /// zip archive (PK) or a pickle stream (0x80, whose ninth byte is inside the legacy magic number, never a brace).
    /// </summary>
    private static bool IsTorchSave(string path)
    {
        Span<byte> head = stackalloc byte[9];
        using var s = File.OpenRead(path);
        int n = s.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        return !(n == head.Length && head[8] == (byte)'{');
    }
}

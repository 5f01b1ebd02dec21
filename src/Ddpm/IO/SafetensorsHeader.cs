using System.Buffers.Binary;
using System.Text.Json;

namespace Ddpm.IO;

/// <summary>One tensor as a safetensors header lists it: its dtype name (e.g. "F32") and shape.</summary>
public sealed record SafetensorsEntry(string Dtype, long[] Shape)
{
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>
/// The header of a <c>.safetensors</c> file (8-byte little-endian length, then a JSON object of name to dtype, shape and
/// data offsets), read without touching the tensors, so that a file can be compared with a network before loading it.
/// </summary>
public static class SafetensorsHeader
{
    /// <summary>Headers above this size are not those of a model file but damage.</summary>
    private const long MaxHeaderBytes = 100L << 20;

    /// <summary>The tensors listed in <paramref name="path"/>'s header, by name (the <c>__metadata__</c> entry left out).</summary>
    public static Dictionary<string, SafetensorsEntry> Read(string path)
    {
        byte[] json;
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            var lengthBytes = new byte[8];
            if (fs.ReadAtLeast(lengthBytes, 8, throwOnEndOfStream: false) < 8)
                throw new DdpmException($"{path}: not a safetensors file ({fs.Length} bytes, shorter than its header length)");
            ulong length = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
            if (length > (ulong)Math.Min(MaxHeaderBytes, fs.Length - 8))
                throw new DdpmException($"{path}: not a safetensors file (header length {length} in a file of {fs.Length} bytes)");
            json = new byte[length];
            fs.ReadExactly(json);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DdpmException($"{path}: cannot read: {AtomicFile.OneLine(e.Message)}", e);
        }
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new DdpmException($"{path}: not a safetensors file (header is not a JSON object)");
            var result = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == "__metadata__") continue;
                if (p.Value.ValueKind != JsonValueKind.Object
                    || !p.Value.TryGetProperty("dtype", out var dtype) || dtype.ValueKind != JsonValueKind.String
                    || !p.Value.TryGetProperty("shape", out var shape) || shape.ValueKind != JsonValueKind.Array)
                    throw new DdpmException($"{path}: safetensors header entry '{p.Name}' lacks a dtype or shape");
                result[p.Name] = new SafetensorsEntry(dtype.GetString()!, shape.EnumerateArray().Select(d => d.GetInt64()).ToArray());
            }
            return result;
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new DdpmException($"{path}: not a safetensors file (header is not valid JSON: {AtomicFile.OneLine(e.Message)})", e);
        }
    }
}

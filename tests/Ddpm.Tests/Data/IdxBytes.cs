using System.IO.Compression;

namespace Ddpm.Tests.Data;

/// <summary>
/// An IDX file read independently of the library, for tests that need the stored bytes themselves: magic
/// 0x0000 08 NN (unsigned bytes, NN dimensions), NN big-endian 32-bit sizes, then the data; gzip when the name ends in .gz.
/// </summary>
internal static class IdxBytes
{
    public static (byte[] Data, int[] Dims) Read(string path)
    {
        using var file = File.OpenRead(path);
        using Stream stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        var bytes = buffer.ToArray();
        int BigEndian(int at) => (bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3];
        Assert.True(bytes[0] == 0 && bytes[1] == 0 && bytes[2] == 0x08, $"{path}: not an unsigned-byte IDX file");
        int rank = bytes[3];
        var dims = Enumerable.Range(0, rank).Select(k => BigEndian(4 + 4 * k)).ToArray();
        var data = bytes[(4 + 4 * rank)..];
        Assert.Equal(dims.Aggregate(1L, (a, b) => a * b), data.LongLength);
        return (data, dims);
    }
}

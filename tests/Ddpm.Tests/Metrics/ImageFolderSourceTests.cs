using System.Text.Json;
using Ddpm.Data;
using Ddpm.Imaging;
using Ddpm.Metrics.Evaluation;
using static TorchSharp.torch;

namespace Ddpm.Tests.Metrics;

/// <summary>
/// Image folders as the evaluation commands read them: each file at its own size with its stored pixels, as pytorch-fid
/// reads it (PIL's Image.open(path).convert("RGB")), never cropped or resampled to the training size.
/// </summary>
public class ImageFolderSourceTests
{
    /// <summary>Seeded bytes (C, H, W) as a [-1, 1] image, the form <see cref="ImageIO.SavePng"/> takes.</summary>
    private static (Tensor Image, byte[] Bytes) RandomImage(int c, int h, int w, long seed)
    {
        using var g = new Generator((ulong)seed, CPU);
        using var bytes = randint(0, 256, new long[] { c, h, w }, generator: g).to_type(ScalarType.Byte);
        return (bytes.to_type(ScalarType.Float32).div(127.5).sub(1.0), bytes.data<byte>().ToArray());
    }

    [Fact]
    public void EveryImageKeepsItsSizeChannelsAndPixelsAndBatchesBreakWhereTheShapeChanges()
    {
        using var scope = NewDisposeScope();
        var dir = TestUtil.TempDir();
        // In file order: two RGB 5 wide x 3 high, one grey 4x4 (in a subfolder, sorted by relative path), one RGB 5x3.
        var shapes = new (string Name, int C, int H, int W)[] { ("a.png", 3, 3, 5), ("b.png", 3, 3, 5), ("c/x.png", 1, 4, 4), ("d.png", 3, 3, 5) };
        var stored = new List<byte[]>();
        for (int i = 0; i < shapes.Length; i++)
        {
            var (name, c, h, w) = shapes[i];
            var (image, bytes) = RandomImage(c, h, w, seed: 10 + i);
            ImageIO.SavePng(image, Path.Combine(dir, name));
            stored.Add(bytes);
        }

        using var source = ImageSource.Open(dir);
        Assert.IsType<ImageFolderSource>(source);
        Assert.Equal(ImageSourceKind.Images, source.Kind);
        Assert.Equal(4, source.Count);
        var batches = source.Batches(8, null, default).ToList();
        Assert.Equal(new[] { new long[] { 2, 3, 3, 5 }, new long[] { 1, 1, 4, 4 }, new long[] { 1, 3, 3, 5 } }, batches.Select(b => b.shape));
        // The PNG bytes come back exactly (b / 127.5 - 1 quantises back to b).
        var images = batches.SelectMany(b => Enumerable.Range(0, (int)b.shape[0]).Select(i => b[i])).ToList();
        for (int i = 0; i < shapes.Length; i++)
            Assert.Equal(stored[i], ImageIO.Quantize(images[i]).data<byte>().ToArray());
        foreach (var b in batches) b.Dispose();

        Assert.Equal(new[] { 1L, 1, 1, 1 }, source.Batches(1, null, default).Select(b => { using (b) return b.shape[0]; }));
        using var first3 = ImageSource.Open(dir, new ImageSourceOptions { Count = 3 });
        Assert.Equal(3, first3.Count);
        Assert.Equal(3, first3.Batches(8, null, default).Sum(b => { using (b) return b.shape[0]; }));
    }

    [Fact]
    public void AlphaIsDroppedAsPilsRgbConversionDropsIt()
    {
        // Pillow's RGBA -> RGB conversion (rgba2rgb in Convert.c) copies R, G, B and ignores A: a fully transparent
        // pixel keeps its stored colour, it is not composited on white (as the training loader does).
        var path = Path.Combine(TestUtil.TempDir(), "rgba.png");
        File.WriteAllBytes(path, RgbaPng(2, 1, new byte[] { 200, 100, 50, 0, 10, 20, 30, 128 }));
        using var image = ImageIO.LoadDroppingAlpha(path);
        using var q = ImageIO.Quantize(image);
        Assert.Equal(new long[] { 3, 1, 2 }, q.shape);
        Assert.Equal(new byte[] { 200, 10, 100, 20, 50, 30 }, q.data<byte>().ToArray()); // planar: R of both, G, B
    }

    /// <summary>
    /// A PNG written by hand from the specification (RFC 2083): signature, IHDR (8-bit RGBA, colour type 6), one IDAT of
    /// zlib-compressed rows each led by filter byte 0, IEND; every chunk closed by the CRC-32 of its type and data. No
    /// encoder is involved, so transparent pixels keep their stored colour.
    /// </summary>
    private static byte[] RgbaPng(int width, int height, byte[] rgba)
    {
        var raw = new MemoryStream();
        for (int y = 0; y < height; y++)
        {
            raw.WriteByte(0);
            raw.Write(rgba, y * width * 4, width * 4);
        }
        var packed = new MemoryStream();
        using (var z = new System.IO.Compression.ZLibStream(packed, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true))
            z.Write(raw.ToArray());
        var header = new byte[13];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header, width);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = 8; // bit depth
        header[9] = 6; // colour type: RGBA
        var png = new MemoryStream();
        png.Write(new byte[] { 137, 80, 78, 71, 13, 10, 26, 10 });
        foreach (var (type, data) in new[] { ("IHDR", header), ("IDAT", packed.ToArray()), ("IEND", Array.Empty<byte>()) })
        {
            var chunk = System.Text.Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
            var be = new byte[4];
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(be, data.Length);
            png.Write(be);
            png.Write(chunk);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(be, Crc32(chunk));
            png.Write(be);
        }
        return png.ToArray();
    }

    /// <summary>CRC-32 (ISO 3309, polynomial 0xEDB88320 reflected), as PNG chunks use it.</summary>
    private static uint Crc32(byte[] data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0xEDB88320 ^ (crc >> 1) : crc >> 1;
        }
        return ~crc;
    }

    [Fact]
    public void AFolderOfDigitsReachesTheClassifierAsItsIdxCopyDoes()
    {
        // The same 28x28 grey bytes as PNGs and as an IDX file: the folder is no longer resampled to 32x32 RGB and back,
        // so both sides give the classifier the same images and the offline distance between them is 0 (round-off only).
        var dir = TestUtil.TempDir();
        var folder = Path.Combine(dir, "png");
        using (var data = TestUtil.TinyData(count: 20, channels: 1, size: 28, seed: 4))
        {
            ImageIO.SaveFolder(data.Images, folder);
            Idx.WriteImages(Path.Combine(dir, "digits-images-idx3-ubyte"), data.Images, gzip: false);
        }
        var idx = Path.Combine(dir, "digits-images-idx3-ubyte");
        using (var a = ImageSource.Open(folder))
        using (var b = ImageSource.Open(idx))
        {
            var batches = a.Batches(50, null, default).Concat(b.Batches(50, null, default)).ToList();
            Assert.Equal(2, batches.Count);
            Assert.Equal(new long[] { 20, 1, 28, 28 }, batches[0].shape);
            Assert.True(batches[0].equal(batches[1]).all().item<bool>());
            foreach (var t in batches) t.Dispose();
        }
        var json = Path.Combine(dir, "d.json");
        var (code, output, err) = TestUtil.Cli("distance", folder, idx, "--no-floor", "-o", json, "--no-progress");
        Assert.True(code == 0, err + output);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        Assert.True(Math.Abs(doc.RootElement.GetProperty("distance").GetDouble()) < 1e-6, output);
    }
}

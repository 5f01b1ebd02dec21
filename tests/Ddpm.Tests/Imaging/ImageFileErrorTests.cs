using System.Buffers.Binary;
using Ddpm.Data;
using Ddpm.Imaging;
using Ddpm.Tests.Data;
using SkiaSharp;

namespace Ddpm.Tests.Imaging;

/// <summary>
/// Files that are not images, and images too large to decode: one-line errors naming the file, before any pixel is
/// decoded. The oversized files are small files whose headers declare a size above <see cref="ImageIO.MaxDecodedPixels"/>
/// (the header fields are patched here by hand, following the PNG and JPEG specifications).
/// </summary>
public class ImageFileErrorTests
{
    [Theory]
    [InlineData("empty.png", 0)]
    [InlineData("notes.jpg", 23)]
    [InlineData("fake.jpeg", 1)]
    public void NonImageFileSaysSoWithItsLength(string name, int length)
    {
        using var tmp = new TempDir();
        var bytes = System.Text.Encoding.ASCII.GetBytes("this is not a picture!!").Take(length).ToArray();
        File.WriteAllBytes(tmp.File(name), bytes);
        string expected = $"{tmp.File(name)}: not a PNG/JPEG image ({length} bytes)";

        Assert.Equal(expected, Assert.Throws<DdpmException>(() => ImageIO.LoadPng(tmp.File(name))).Message);
        Assert.Equal(expected, Assert.Throws<DdpmException>(() => ImageIO.LoadDroppingAlpha(tmp.File(name))).Message);
        Assert.Equal(expected, Assert.Throws<DdpmException>(() => ImageFolderReader.Read(tmp.Path, 8, 3)).Message);
        // The default size and channels are read from the headers, which fail the same way.
        Assert.Equal(expected, Assert.Throws<DdpmException>(() => ImageFolderReader.Read(tmp.Path)).Message);
    }

    /// <summary>PNG CRC-32 (ISO 3309, polynomial 0xEDB88320 reflected), bit by bit.</summary>
    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return ~crc;
    }

    /// <summary>A small PNG whose IHDR (the first chunk: length, "IHDR", width, height at bytes 16 and 20) declares width x height.</summary>
    private static byte[] PngDeclaring(int width, int height)
    {
        using var bmp = new SKBitmap(new SKImageInfo(4, 4, SKColorType.Gray8, SKAlphaType.Opaque));
        bmp.Erase(SKColors.Gray);
        var png = bmp.Encode(SKEncodedImageFormat.Png, 100).ToArray();
        Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(png, 12, 4));
        BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(16), width);
        BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(20), height);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(29), Crc32(png.AsSpan(12, 17))); // type + 13 data bytes
        return png;
    }

    /// <summary>A small JPEG whose baseline frame header (FFC0: length, precision, height, width) declares width x height.</summary>
    private static byte[] JpegDeclaring(int width, int height)
    {
        using var bmp = new SKBitmap(new SKImageInfo(16, 16, SKColorType.Rgba8888, SKAlphaType.Opaque));
        bmp.Erase(SKColors.Teal);
        var jpg = bmp.Encode(SKEncodedImageFormat.Jpeg, 90).ToArray();
        int sof = Enumerable.Range(2, jpg.Length - 10).First(i => jpg[i] == 0xFF && jpg[i + 1] == 0xC0);
        BinaryPrimitives.WriteUInt16BigEndian(jpg.AsSpan(sof + 5), (ushort)height);
        BinaryPrimitives.WriteUInt16BigEndian(jpg.AsSpan(sof + 7), (ushort)width);
        return jpg;
    }

    [Fact]
    public void ImagesAboveTheDecodeLimitAreRefusedFromTheirHeader()
    {
        using var tmp = new TempDir();
        // 10000 x 6000 = 60 megapixels (above 50); 7000 x 7000 = 49 megapixels is below but is not decoded here.
        File.WriteAllBytes(tmp.File("huge.png"), PngDeclaring(10000, 6000));
        File.WriteAllBytes(tmp.File("huge.jpg"), JpegDeclaring(12000, 6000));
        Assert.Equal((10000, 6000, true), ImageIO.ReadHeader(tmp.File("huge.png")));
        Assert.Equal((12000, 6000, false), ImageIO.ReadHeader(tmp.File("huge.jpg")));

        var png = Assert.Throws<DdpmException>(() => ImageIO.LoadPng(tmp.File("huge.png")));
        Assert.Equal($"{tmp.File("huge.png")}: 10000 x 6000 pixels (60 megapixels) is above the 50-megapixel limit of decoded images; shrink the file first", png.Message);
        var jpg = Assert.Throws<DdpmException>(() => ImageIO.LoadDroppingAlpha(tmp.File("huge.jpg")));
        Assert.StartsWith($"{tmp.File("huge.jpg")}: 12000 x 6000 pixels (72 megapixels) is above", jpg.Message);
        // Training data: the reader's first file (huge.jpg in path order) is refused the same way.
        var folder = Assert.Throws<DdpmException>(() => ImageFolderReader.Read(tmp.Path, 32, 3));
        Assert.StartsWith($"{tmp.File("huge.jpg")}: 12000 x 6000 pixels", folder.Message);
        Assert.True(50_000_000 == ImageIO.MaxDecodedPixels);
    }

    [Fact]
    public void AHeaderBelowTheLimitStillDecodes()
    {
        // The patched header is what the limit reads: the same file declaring its true size decodes as before.
        using var tmp = new TempDir();
        File.WriteAllBytes(tmp.File("small.png"), PngDeclaring(4, 4));
        using var loaded = ImageIO.LoadPng(tmp.File("small.png"));
        Assert.Equal(new long[] { 1, 4, 4 }, loaded.shape);
        Assert.Equal(SKColors.Gray.Red / 127.5 - 1, loaded[0, 2, 2].item<float>(), 5);
    }
}

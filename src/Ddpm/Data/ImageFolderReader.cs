using Ddpm.IO;
using Ddpm.Imaging;
using SkiaSharp;
using static TorchSharp.torch;

namespace Ddpm.Data;

/// <summary>
/// Reads a folder of PNG and JPEG images (recursively) into a dataset of square images.
/// <list type="bullet">
/// <item>Files: extensions .png, .jpg, .jpeg in any letter case, in every subfolder; sorted by their path relative to the folder
/// ('/' separators, ordinal comparison), so the order is the same on every machine. Other files are skipped.</item>
/// <item>Geometry: the centred square of side min(width, height) is cut out and resampled to imageSize x imageSize in one step,
/// which equals "resize the shorter side to imageSize, then centre-crop" without an intermediate rounding (pixels just outside
/// the square still reach the edge pixels through the filter, as in resize-then-crop). Enlarging uses
/// the Mitchell cubic filter; shrinking uses trilinear mipmap filtering (Skia's high quality choice for each case).</item>
/// <item>Alpha is composited on white (transparent pixels become white), as image viewers usually show them.</item>
/// <item>Colour: channels = 3 keeps R, G, B; channels = 1 takes the luminance Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601)
/// of the 8-bit values, kept in float (not rounded). Values are mapped to [-1, 1] as v / 127.5 - 1. No colour management is applied,
/// and the EXIF orientation of JPEG files is ignored (pixels are used as stored).</item>
/// </list>
/// </summary>
public static class ImageFolderReader
{
    private static readonly string[] Extensions = { ".png", ".jpg", ".jpeg" };

    /// <summary>The image files <see cref="Read"/> would use, as full paths, in its order.</summary>
    public static IReadOnlyList<string> ListImages(string folder)
    {
        if (!Directory.Exists(folder))
            throw new DdpmException($"image folder not found: {folder}");
        string root = Path.GetFullPath(folder);
        try
        {
            return Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
                .Where(p => Extensions.Contains(Path.GetExtension(p), StringComparer.OrdinalIgnoreCase))
                .Select(p => (Full: p, Rel: Path.GetRelativePath(root, p).Replace('\\', '/')))
                .OrderBy(t => t.Rel, StringComparer.Ordinal)
                .Select(t => t.Full)
                .ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DdpmException($"{folder}: cannot list images: {AtomicFile.OneLine(e.Message)}", e);
        }
    }

    /// <summary>
    /// Reads the images of <paramref name="folder"/> (see the class summary); only the first <paramref name="maxCount"/> in order when given.
    /// <paramref name="imageSize"/> null: the shorter side of the first image; <paramref name="channels"/> null: 1 when every image
    /// read is stored grey (a grey PNG without alpha, a one-component JPEG), else 3. Both are taken from the files' headers.
    /// </summary>
    public static ImageDataset Read(string folder, int? imageSize = null, int? channels = null, int? maxCount = null)
    {
        if (imageSize is int s && (s < 1 || s > MaxImageSize))
            throw new DdpmException($"image size {s}: must be between 1 and {MaxImageSize}");
        if (channels is int c && c is not (1 or 3))
            throw new DdpmException($"channels {c}: must be 1 (grey) or 3 (RGB)");
        if (maxCount is < 1)
            throw new DdpmException($"max count {maxCount}: must be at least 1");

        var files = ListImages(folder);
        if (files.Count == 0)
            throw new DdpmException($"no images found in {folder} (looked for .png, .jpg, .jpeg in all subfolders)");
        int n = maxCount is int m ? Math.Min(m, files.Count) : files.Count;
        if (imageSize is null || channels is null)
        {
            var (size, grey) = DataShape(files, n);
            imageSize ??= size;
            channels ??= grey ? 1 : 3;
        }
        return ReadFiles(folder, files, n, imageSize.Value, channels.Value);
    }

    /// <summary>The largest image size a folder is read at.</summary>
    public const int MaxImageSize = 4096;

    /// <summary>The data's own shape: the first image's shorter side, and whether all of the first <paramref name="n"/> images are stored grey.</summary>
    private static (int Size, bool Grey) DataShape(IReadOnlyList<string> files, int n)
    {
        var (w, h, grey) = ImageIO.ReadHeader(files[0]);
        int size = Math.Min(w, h);
        if (size > MaxImageSize)
            throw DdpmException.ForSetting("image_size",
                $"is not set and the first image ({files[0]}, {w} x {h}) is larger than {MaxImageSize} pixels: set it");
        for (int i = 1; i < n && grey; i++) grey = ImageIO.ReadHeader(files[i]).Grey;
        return (size, grey);
    }

    private static ImageDataset ReadFiles(string folder, IReadOnlyList<string> files, int n, int imageSize, int channels)
    {
        long total = (long)n * channels * imageSize * imageSize;
        if (total > Array.MaxLength)
            throw new DdpmException($"{folder}: {n} images of {channels} x {imageSize} x {imageSize} do not fit in memory at once; use a smaller max count or image size");

        var values = new float[total];
        int plane = imageSize * imageSize;
        var rgba = new byte[plane * 4];
        for (int i = 0; i < n; i++)
        {
            LoadSquare(files[i], imageSize, rgba);
            int baseI = i * channels * plane;
            for (int p = 0; p < plane; p++)
            {
                byte r = rgba[4 * p], g = rgba[4 * p + 1], b = rgba[4 * p + 2];
                if (channels == 1)
                {
                    float y = 0.299f * r + 0.587f * g + 0.114f * b;
                    values[baseI + p] = y / 127.5f - 1f;
                }
                else
                {
                    values[baseI + p] = ImageIO.Dequantize(r);
                    values[baseI + plane + p] = ImageIO.Dequantize(g);
                    values[baseI + 2 * plane + p] = ImageIO.Dequantize(b);
                }
            }
        }
        var images = tensor(values, new long[] { n, channels, imageSize, imageSize });
        return new ImageDataset(images, null, folder);
    }

    /// <summary>Decodes one file, centre-crops and resamples it to size x size on white, and writes its RGBA bytes (opaque) into <paramref name="rgba"/>.</summary>
    internal static void LoadSquare(string path, int size, byte[] rgba)
    {
        SKBitmap decoded;
        try { decoded = ImageIO.Decode(path, out _); }
        catch (DdpmException) { throw; }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new DdpmException($"{path}: cannot decode image ({AtomicFile.OneLine(e.Message)})", e);
        }
        using (decoded)
        {
            // Draw through Skia in premultiplied form so that alpha blends on the white background correctly.
            using var src = SKImage.FromBitmap(decoded)
                ?? throw new DdpmException($"{path}: cannot decode image (no pixels)");
            int w = decoded.Width, h = decoded.Height, side = Math.Min(w, h);
            var srcRect = SKRect.Create((w - side) / 2f, (h - side) / 2f, side, side);
            var dstRect = SKRect.Create(0, 0, size, size);
            var sampling = side > size
                ? new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear)
                : side < size ? new SKSamplingOptions(SKCubicResampler.Mitchell)
                : new SKSamplingOptions(SKFilterMode.Nearest, SKMipmapMode.None);

            var info = new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Premul);
            using var target = new SKBitmap(info);
            using (var canvas = new SKCanvas(target))
            {
                canvas.Clear(SKColors.White);
                using var paint = new SKPaint { BlendMode = SKBlendMode.SrcOver };
                canvas.DrawImage(src, srcRect, dstRect, sampling, paint);
            }
            var px = target.GetPixelSpan();
            int rowBytes = target.RowBytes;
            for (int y = 0; y < size; y++) px.Slice(y * rowBytes, size * 4).CopyTo(rgba.AsSpan(y * size * 4));
        }
    }
}

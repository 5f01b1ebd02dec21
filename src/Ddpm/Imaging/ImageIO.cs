using Ddpm.IO;
using System.Runtime.InteropServices;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Imaging;

/// <summary>
/// Conversion between [-1, 1] image tensors and 8-bit pixels, and PNG output through SkiaSharp.
/// <para>Quantisation (used for every PNG written, and to be used by FID code): pixel = round((x + 1) * 127.5),
/// computed in float32, rounded half to even (torch.round), clamped to [0, 255]; NaN is treated as 0 (mid grey, 128).
/// The inverse is x = b / 127.5 - 1, so a byte survives dequantise-quantise exactly.</para>
/// <para>All files are written atomically (temporary file in the same folder, renamed over the target);
/// parent folders are created as needed.</para>
/// </summary>
public static class ImageIO
{
    private static readonly float[] ByteToUnit = Enumerable.Range(0, 256).Select(b => (float)(b / 127.5 - 1.0)).ToArray();

    /// <summary>b / 127.5 - 1, rounded once to float.</summary>
    public static float Dequantize(byte b) => ByteToUnit[b];

    /// <summary>The pixel value of one [-1, 1] value: round((x + 1) * 127.5) in float32, half to even, clamped to [0, 255].</summary>
    public static byte Quantize(float x)
    {
        if (float.IsNaN(x)) x = 0f;
        float v = MathF.Round((x + 1f) * 127.5f, MidpointRounding.ToEven);
        return (byte)Math.Clamp(v, 0f, 255f);
    }

    /// <summary>Quantises a tensor of any shape, dtype and device to a uint8 CPU tensor of the same shape (see the class summary).</summary>
    public static Tensor Quantize(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var scope = NewDisposeScope();
        var t = x.detach().to(ScalarType.Float32, CPU);
        var q = t.nan_to_num(0.0).add(1.0).mul(127.5).round().clamp(0, 255).to(ScalarType.Byte);
        return q.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The 8-bit pixels of one image (C, H, W) with C = 1 or 3 (or (H, W), taken as grey), interleaved as a PNG stores them:
    /// row by row, each pixel's channels together (H x W x C bytes).
    /// </summary>
    public static byte[] ToBytes(Tensor image)
    {
        var (c, h, w) = ImageShape(image);
        using var scope = NewDisposeScope();
        var q = Quantize(image).reshape(c, h, w).permute(1, 2, 0).contiguous();
        return q.data<byte>().ToArray();
    }

    /// <summary>Builds an image tensor (C, H, W) in [-1, 1] from interleaved 8-bit pixels (H x W x C bytes), the inverse of <see cref="ToBytes"/>.</summary>
    public static Tensor FromBytes(ReadOnlySpan<byte> interleaved, int channels, int height, int width)
    {
        if (channels is not (1 or 3)) throw new ArgumentException($"channels must be 1 or 3; got {channels}", nameof(channels));
        if ((long)channels * height * width != interleaved.Length)
            throw new ArgumentException($"{interleaved.Length} bytes do not match {height} x {width} x {channels}");
        var planar = new float[interleaved.Length];
        int hw = height * width;
        for (int p = 0; p < hw; p++)
            for (int k = 0; k < channels; k++)
                planar[k * hw + p] = ByteToUnit[interleaved[p * channels + k]];
        return tensor(planar, new long[] { channels, height, width });
    }

    /// <summary>Encodes one image (C, H, W) in [-1, 1] (C = 1: grey PNG, C = 3: RGB PNG) to PNG bytes.</summary>
    public static byte[] EncodePng(Tensor image)
    {
        var (c, h, w) = ImageShape(image);
        return EncodePng(ToBytes(image), c, h, w);
    }

    /// <summary>Saves one image (C, H, W) in [-1, 1], C = 1 or 3, as a PNG file, atomically.</summary>
    public static void SavePng(Tensor image, string path)
    {
        var png = EncodePng(image);
        AtomicFile.Write(path, png);
    }

    /// <summary>
    /// Saves a batch (N, C, H, W) in [-1, 1] as one PNG grid, atomically.
    /// <para>Layout (as torchvision's make_grid): <c>cols = columns &gt; 0 ? min(columns, N) : ceil(sqrt(N))</c>, rows = ceil(N / cols),
    /// images in row-major order. Each image is first enlarged <paramref name="scale"/> times by nearest neighbour (each pixel becomes a
    /// scale x scale block); <paramref name="padding"/> is in output pixels, unscaled, and surrounds every image, the outer border included.
    /// So image k's top-left pixel is at x = padding + (k % cols) * (W * scale + padding), y = padding + (k / cols) * (H * scale + padding),
    /// and the grid is cols * (W * scale + padding) + padding wide.</para>
    /// <para>Padding and unused cells take <paramref name="padValue"/> in every channel; the default 255 (white) separates
    /// the black backgrounds of MNIST-like digits clearly.</para>
    /// </summary>
    public static void SaveGrid(Tensor images, string path, int columns = 0, int padding = 2, int scale = 1, byte padValue = 255)
    {
        var (grid, c, gh, gw) = MakeGrid(images, columns, padding, scale, padValue);
        AtomicFile.Write(path, EncodePng(grid, c, gh, gw));
    }

    /// <summary>The interleaved pixels of the grid <see cref="SaveGrid"/> writes, with its channel count, height and width.</summary>
    public static (byte[] Pixels, int Channels, int Height, int Width) MakeGrid(Tensor images, int columns = 0, int padding = 2, int scale = 1, byte padValue = 255)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4)
            throw new ArgumentException($"images must be (N, C, H, W); got shape [{string.Join(", ", images.shape)}]", nameof(images));
        int n = (int)images.shape[0], c = (int)images.shape[1], h = (int)images.shape[2], w = (int)images.shape[3];
        if (n < 1) throw new ArgumentException("no images to put in a grid", nameof(images));
        if (c is not (1 or 3)) throw new ArgumentException($"images must have 1 or 3 channels; got {c}", nameof(images));
        if (columns < 0) throw new ArgumentOutOfRangeException(nameof(columns), columns, "must be 0 (automatic) or positive");
        if (padding < 0) throw new ArgumentOutOfRangeException(nameof(padding), padding, "must not be negative");
        if (scale < 1) throw new ArgumentOutOfRangeException(nameof(scale), scale, "must be at least 1");

        int cols = columns > 0 ? Math.Min(columns, n) : (int)Math.Ceiling(Math.Sqrt(n));
        int rows = (n + cols - 1) / cols;
        int sh = h * scale, sw = w * scale;
        long gwL = (long)cols * (sw + padding) + padding, ghL = (long)rows * (sh + padding) + padding;
        if (gwL * ghL * c > Array.MaxLength || gwL > 32767 || ghL > 32767)
            throw new ArgumentException($"grid of {ghL} x {gwL} pixels is too large for a PNG");
        int gw = (int)gwL, gh = (int)ghL;

        byte[] src;
        using (var q = Quantize(images).contiguous()) src = q.data<byte>().ToArray(); // N, C, H, W
        var grid = new byte[gh * gw * c];
        Array.Fill(grid, padValue);
        for (int k = 0; k < n; k++)
        {
            int x0 = padding + (k % cols) * (sw + padding);
            int y0 = padding + (k / cols) * (sh + padding);
            int baseK = k * c * h * w;
            for (int y = 0; y < sh; y++)
            {
                int sy = y / scale;
                int row = ((y0 + y) * gw + x0) * c;
                for (int x = 0; x < sw; x++)
                {
                    int sx = x / scale;
                    for (int ch = 0; ch < c; ch++)
                        grid[row + x * c + ch] = src[baseK + (ch * h + sy) * w + sx];
                }
            }
        }
        return (grid, c, gh, gw);
    }

    /// <summary>
    /// Saves each image of a batch (N, C, H, W) as its own PNG in <paramref name="folder"/>, named prefix_00000.png, prefix_00001.png, ...
    /// (numbered from <paramref name="startIndex"/>, at least 5 digits, more when the numbers need them). Returns the paths written.
    /// <paramref name="totalCount"/>, when larger, is the size of the whole set these images are a part of: the names
    /// then have the digits that set's last number needs, so that parts written separately (shards) are named as one
    /// folder of <paramref name="totalCount"/> images would be.
    /// </summary>
    public static string[] SaveFolder(Tensor images, string folder, string prefix = "sample", int startIndex = 0, int totalCount = 0)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4)
            throw new ArgumentException($"images must be (N, C, H, W); got shape [{string.Join(", ", images.shape)}]", nameof(images));
        if (startIndex < 0) throw new ArgumentOutOfRangeException(nameof(startIndex), startIndex, "must not be negative");
        int n = (int)images.shape[0];
        if (totalCount < 0) throw new ArgumentOutOfRangeException(nameof(totalCount), totalCount, "must not be negative");
        int last = Math.Max(startIndex + Math.Max(n, 1), totalCount) - 1;
        int digits = Math.Max(5, last.ToString(System.Globalization.CultureInfo.InvariantCulture).Length);
        var paths = new string[n];
        for (int i = 0; i < n; i++)
        {
            using var scope = NewDisposeScope();
            string name = $"{prefix}_{(startIndex + i).ToString("D" + digits, System.Globalization.CultureInfo.InvariantCulture)}.png";
            paths[i] = Path.Combine(folder, name);
            SavePng(images[i], paths[i]);
        }
        return paths;
    }

    /// <summary>
    /// Loads an image file (PNG, or anything SkiaSharp decodes) as a tensor (C, H, W) in [-1, 1], pixel b mapped to b / 127.5 - 1:
    /// C = 1 for a grey image without alpha, otherwise C = 3 (RGB). Alpha, if any, is composited on white (in float, unrounded).
    /// No colour management is applied: the stored values are returned.
    /// </summary>
    public static Tensor LoadPng(string path)
    {
        using var bitmap = Decode(path, out bool grey);
        if (grey) return StoredPixels(bitmap, grey: true);
        int h = bitmap.Height, w = bitmap.Width;
        var pixels = bitmap.GetPixelSpan();
        int rowBytes = bitmap.RowBytes;
        var planar = new float[3 * h * w];
        int hw = h * w;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int o = y * rowBytes + 4 * x;
                int a = pixels[o + 3];
                for (int k = 0; k < 3; k++)
                {
                    float v = a == 255 ? pixels[o + k] : (pixels[o + k] * a + 255f * (255 - a)) / 255f;
                    planar[k * hw + y * w + x] = a == 255 ? ByteToUnit[pixels[o + k]] : v / 127.5f - 1f;
                }
            }
        return tensor(planar, new long[] { 3, h, w });
    }

    /// <summary>
    /// Loads an image file as pytorch-fid reads it (PIL's <c>Image.open(path).convert("RGB")</c>): the stored 8-bit values at
    /// the file's own size, with alpha, if any, dropped (not composited: PIL's RGBA to RGB conversion discards it) and no
    /// colour management. Returns a tensor (C, H, W) in [-1, 1], pixel b mapped to b / 127.5 - 1, so that
    /// <see cref="Quantize(Tensor)"/> gives the stored bytes back exactly: C = 1 for a grey image without alpha (whose RGB
    /// conversion would repeat the one channel three times), otherwise C = 3.
    /// </summary>
    public static Tensor LoadDroppingAlpha(string path)
    {
        using var bitmap = Decode(path, out bool grey);
        return StoredPixels(bitmap, grey);
    }

    /// <summary>A decoded bitmap's stored bytes as (C, H, W) in [-1, 1]: Gray8 as one channel, RGBA8888 as RGB with alpha dropped.</summary>
    private static Tensor StoredPixels(SKBitmap bitmap, bool grey)
    {
        int h = bitmap.Height, w = bitmap.Width, c = grey ? 1 : 3;
        var pixels = bitmap.GetPixelSpan();
        int rowBytes = bitmap.RowBytes, step = grey ? 1 : 4;
        var bytes = new byte[c * h * w];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int k = 0; k < c; k++)
                    bytes[(y * w + x) * c + k] = pixels[y * rowBytes + step * x + k];
        return FromBytes(bytes, c, h, w);
    }

    /// <summary>
    /// The most pixels (width x height) an image file may have to be decoded: 50 megapixels, 200 MB of RGBA. Larger
    /// files are refused before any pixel is decoded (the header gives their size), so that one huge or hostile file
    /// cannot take gigabytes of memory.
    /// </summary>
    public const long MaxDecodedPixels = 50_000_000;

    /// <summary>
    /// The width and height an image file's header declares, and whether it stores grey pixels without alpha; nothing
    /// is decoded. Failures (a missing, unreadable, empty or non-image file) are DdpmExceptions naming the file.
    /// </summary>
    public static (int Width, int Height, bool Grey) ReadHeader(string path)
    {
        using var codec = OpenCodec(path);
        var info = codec.Info;
        return (info.Width, info.Height, info.ColorType == SKColorType.Gray8);
    }

    /// <summary>The codec of an image file, its header read; DdpmExceptions name the file and say what it is not.</summary>
    private static SKCodec OpenCodec(string path)
    {
        if (!File.Exists(path)) throw new DdpmException($"image not found: {path}");
        long length;
        try
        {
            length = new FileInfo(path).Length;
            using (File.OpenRead(path)) { } // an unreadable file is not "not an image"
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DdpmException($"{path}: cannot read: {AtomicFile.OneLine(e.Message)}", e);
        }
        var codec = SKCodec.Create(path, out _);
        if (codec is null)
            throw new DdpmException($"{path}: not a PNG/JPEG image ({length} bytes)");
        var info = codec.Info;
        if (info.Width < 1 || info.Height < 1)
        {
            codec.Dispose();
            throw new DdpmException($"{path}: image has no pixels ({info.Width} x {info.Height})");
        }
        return codec;
    }

    /// <summary>
    /// Decodes an image file: a grey image without alpha to Gray8, anything else to unpremultiplied RGBA8888, with no colour conversion.
    /// Failures are DdpmExceptions naming the file; an image above <see cref="MaxDecodedPixels"/> is refused before decoding.
    /// </summary>
    internal static SKBitmap Decode(string path, out bool grey)
    {
        using var codec = OpenCodec(path);
        var info = codec.Info;
        long pixels = (long)info.Width * info.Height;
        if (pixels > MaxDecodedPixels)
            throw new DdpmException(
                $"{path}: {info.Width} x {info.Height} pixels ({pixels / 1e6:0.#} megapixels) is above the {MaxDecodedPixels / 1_000_000}-megapixel limit of decoded images; shrink the file first");
        grey = info.ColorType == SKColorType.Gray8;
        var target = new SKImageInfo(info.Width, info.Height, grey ? SKColorType.Gray8 : SKColorType.Rgba8888,
            grey ? SKAlphaType.Opaque : SKAlphaType.Unpremul);
        var bitmap = new SKBitmap(target);
        var r = codec.GetPixels(target, bitmap.GetPixels());
        if (r != SKCodecResult.Success)
        {
            bitmap.Dispose();
            throw new DdpmException($"{path}: damaged {codec.EncodedFormat.ToString().ToUpperInvariant()} image, cannot decode its pixels ({r})");
        }
        return bitmap;
    }

    internal static byte[] EncodePng(byte[] interleaved, int c, int h, int w)
    {
        var info = c == 1
            ? new SKImageInfo(w, h, SKColorType.Gray8, SKAlphaType.Opaque)
            : new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var bitmap = new SKBitmap(info);
        IntPtr dst = bitmap.GetPixels();
        int rowBytes = bitmap.RowBytes;
        if (c == 1)
        {
            for (int y = 0; y < h; y++) Marshal.Copy(interleaved, y * w, dst + y * rowBytes, w);
        }
        else
        {
            var row = new byte[w * 4];
            for (int y = 0; y < h; y++)
            {
                for (int x = 0; x < w; x++)
                {
                    int s = (y * w + x) * 3;
                    row[4 * x] = interleaved[s];
                    row[4 * x + 1] = interleaved[s + 1];
                    row[4 * x + 2] = interleaved[s + 2];
                    row[4 * x + 3] = 255;
                }
                Marshal.Copy(row, 0, dst + y * rowBytes, row.Length);
            }
        }
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new InvalidOperationException($"SkiaSharp failed to encode a {w} x {h} x {c} PNG");
        return data.ToArray();
    }

    private static (int C, int H, int W) ImageShape(Tensor image)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.dim() == 2) return (1, (int)image.shape[0], (int)image.shape[1]);
        if (image.dim() != 3 || image.shape[0] is not (1 or 3))
            throw new ArgumentException($"an image must be (C, H, W) with C = 1 or 3, or (H, W); got shape [{string.Join(", ", image.shape)}]", nameof(image));
        if (image.shape[1] < 1 || image.shape[2] < 1)
            throw new ArgumentException($"image shape [{string.Join(", ", image.shape)}] has no pixels", nameof(image));
        return ((int)image.shape[0], (int)image.shape[1], (int)image.shape[2]);
    }
}

using System.Buffers.Binary;
using System.IO.Compression;
using Ddpm.Diffusion;
using Ddpm.Models;
using Ddpm.Runs;
using Ddpm.Tests.Sampling;
using Ddpm.Training;
using SkiaSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Cli;

/// <summary>The classes that open what sample, diffuse and interpolate write share one tiny trained run.</summary>
[CollectionDefinition(Name)]
public sealed class CliOutputCollection : ICollectionFixture<TinyRun>
{
    public const string Name = "CLI outputs on one tiny run";
}

/// <summary>
/// Base of the tests that compare CLI outputs with the library bit for bit: both run on one libtorch thread (the CLI calls
/// pass --threads 1), since another thread count may reorder float reductions, and one thread is also the fastest for these
/// tiny tensors on a shared machine. The previous count is restored after each test.
/// </summary>
public abstract class OneThreadTest : IDisposable
{
    private readonly int _threads = get_num_threads();

    protected OneThreadTest() => set_num_threads(1);

    public void Dispose()
    {
        set_num_threads(_threads);
        GC.SuppressFinalize(this);
    }
}

/// <summary>A grey PNG's pixels, read with SkiaSharp's decoder (not the project's loader).</summary>
public sealed record GreyPng(int Height, int Width, byte[] Pixels)
{
    public byte At(int y, int x) => Pixels[y * Width + x];

    public static GreyPng Read(string path)
    {
        using var codec = SKCodec.Create(path) ?? throw new InvalidOperationException($"{path}: not an image");
        // The grids of 1-channel images are documented to be grey PNGs (ImageIO.EncodePng: C = 1 -> Gray8).
        Assert.Equal(SKColorType.Gray8, codec.Info.ColorType);
        int h = codec.Info.Height, w = codec.Info.Width;
        var info = new SKImageInfo(w, h, SKColorType.Gray8, SKAlphaType.Opaque);
        using var bitmap = new SKBitmap(info);
        Assert.Equal(SKCodecResult.Success, codec.GetPixels(info, bitmap.GetPixels()));
        var span = bitmap.GetPixelSpan();
        var pixels = new byte[h * w];
        for (int y = 0; y < h; y++) span.Slice(y * bitmap.RowBytes, w).CopyTo(pixels.AsSpan(y * w));
        return new GreyPng(h, w, pixels);
    }
}

/// <summary>
/// The grid layout ImageIO.SaveGrid documents (torchvision's make_grid): cell k of <c>cols</c> columns has its top-left
/// pixel at x = pad + (k % cols) (W s + pad), y = pad + (k / cols) (H s + pad); each image pixel is an s x s block; the
/// rest is padding of value 255.
/// </summary>
public sealed record GridLayout(int Cols, int Rows, int ImageSize, int Scale, int Padding = 2)
{
    public int Width => Cols * (ImageSize * Scale + Padding) + Padding;
    public int Height => Rows * (ImageSize * Scale + Padding) + Padding;

    /// <summary>Cell k's image (H x W bytes, row-major); every s x s block must hold one value.</summary>
    public byte[] Cell(GreyPng png, int k)
    {
        int x0 = Padding + (k % Cols) * (ImageSize * Scale + Padding);
        int y0 = Padding + (k / Cols) * (ImageSize * Scale + Padding);
        var image = new byte[ImageSize * ImageSize];
        for (int y = 0; y < ImageSize; y++)
            for (int x = 0; x < ImageSize; x++)
            {
                byte v = png.At(y0 + y * Scale, x0 + x * Scale);
                for (int dy = 0; dy < Scale; dy++)
                    for (int dx = 0; dx < Scale; dx++)
                        Assert.Equal(v, png.At(y0 + y * Scale + dy, x0 + x * Scale + dx));
                image[y * ImageSize + x] = v;
            }
        return image;
    }

    /// <summary>Checks the size, and that every pixel outside the first <paramref name="used"/> cells is 255.</summary>
    public void CheckFrame(GreyPng png, int used)
    {
        Assert.Equal((Height, Width), (png.Height, png.Width));
        int side = ImageSize * Scale, stride = side + Padding;
        for (int y = 0; y < png.Height; y++)
            for (int x = 0; x < png.Width; x++)
            {
                int cx = (x - Padding) / stride, cy = (y - Padding) / stride;
                bool inside = x >= Padding && y >= Padding && (x - Padding) % stride < side && (y - Padding) % stride < side
                    && cx < Cols && cy < Rows && cy * Cols + cx < used;
                if (!inside) Assert.True(png.At(y, x) == 255, $"padding pixel ({y}, {x}) is {png.At(y, x)}");
            }
    }
}

/// <summary>Pixel helpers written from the documented formulas, independently of ImageIO and Idx.</summary>
public static class PixelFacts
{
    /// <summary>ImageIO's documented quantisation: round((x + 1) 127.5) in float32, half to even, clamped to [0, 255], NaN as 0.</summary>
    public static byte Quantise(float x)
    {
        if (float.IsNaN(x)) x = 0f;
        return (byte)Math.Clamp(MathF.Round((x + 1f) * 127.5f, MidpointRounding.ToEven), 0f, 255f);
    }

    /// <summary>Image <paramref name="index"/> of a batch (N, 1, H, W), quantised, row-major.</summary>
    public static byte[] Quantised(Tensor batch, int index)
    {
        var values = batch[index].contiguous().data<float>().ToArray();
        return values.Select(Quantise).ToArray();
    }

    /// <summary>The pixels of a gzipped 3-D IDX images file: magic 0x00000803, then count, rows, cols (big-endian), then the bytes.</summary>
    public static (int Count, int Height, int Width, byte[] Pixels) ReadIdxGz(string path)
    {
        using var z = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var all = new MemoryStream();
        z.CopyTo(all);
        var bytes = all.ToArray();
        Assert.Equal(0x00000803, BinaryPrimitives.ReadInt32BigEndian(bytes));
        int n = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4)), h = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(8)),
            w = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(12));
        return (n, h, w, bytes[16..]);
    }
}

/// <summary>A run's network and diffusion, built from its checkpoint files directly (not through DdpmPipeline).</summary>
public sealed class RunWeights : IDisposable
{
    public UNet Model { get; }
    public GaussianDiffusion Diffusion { get; }

    /// <summary><paramref name="ema"/>: ema.safetensors (the EMA weights) or model.safetensors (the raw ones).</summary>
    public RunWeights(string run, bool ema)
    {
        var dir = CheckpointStore.Resolve(run);
        var config = CheckpointStore.ReadState(dir).Config;
        Model = new UNet(config.Model!);
        CheckpointStore.LoadWeights(Model, Path.Combine(dir, ema ? CheckpointStore.EmaFile : CheckpointStore.ModelFile));
        Model.eval();
        Diffusion = DiffusionFactory.Diffusion(config);
    }

    public void Dispose()
    {
        Model.Dispose();
        Diffusion.Dispose();
    }
}

using Ddpm.Imaging;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Metrics.Inception;

/// <summary>
/// pytorch-fid's input pipeline: 8-bit RGB pixels (grey replicated to three channels) divided by 255, bilinear resize
/// to 299x299 with half-pixel centres (align_corners=False, no antialiasing, as torch.nn.functional.interpolate), then
/// 2x - 1. Generated images are first rounded to the 256 levels a PNG stores (<see cref="ImageIO.Quantize(Tensor)"/>),
/// so an image scores the same before and after it is saved.
/// </summary>
public static class FidPreprocess
{
    /// <summary>From float (N, C, H, W) images in [-1, 1], C = 1 or 3: quantise, then <see cref="FromBytes"/>.</summary>
    public static Tensor FromImages(Tensor images, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        CheckShape(images);
        using var scope = NewDisposeScope();
        var q = ImageIO.Quantize(images);
        return FromBytes(q, device ?? images.device).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// From uint8 (N, C, H, W) pixels, C = 1 or 3, to the network's float32 (N, 3, 299, 299) input in [-1, 1] on
    /// <paramref name="device"/> (default: the pixels' device).
    /// </summary>
    public static Tensor FromBytes(Tensor pixels, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        CheckShape(pixels);
        if (pixels.dtype != ScalarType.Byte)
            throw new ArgumentException($"FID preprocessing: pixels must be uint8, got {pixels.dtype}", nameof(pixels));
        using var scope = NewDisposeScope();
        // Scalars passed to TorchSharp are explicit and held for the whole call; see Ddpm.Runtime.HeldScalars.
        using var levels = 255.0.ToScalar();
        using var two = 2.0.ToScalar();
        using var one = 1.0.ToScalar();
        var x = pixels.to(device ?? pixels.device).to_type(ScalarType.Float32).div(levels);
        x = nn.functional.interpolate(x, new long[] { FidInceptionV3.InputSize, FidInceptionV3.InputSize },
            mode: InterpolationMode.Bilinear, align_corners: false);
        // Grey to RGB after the resize: the resize works on each channel alone, so the result is the same, for a third of the work.
        if (x.shape[1] == 1) x = x.expand(-1, 3, -1, -1);
        return x.mul(two).sub(one).MoveToOuterDisposeScope();
    }

    private static void CheckShape(Tensor t)
    {
        if (t.dim() != 4 || (t.shape[1] != 1 && t.shape[1] != 3))
            throw new DdpmException($"FID preprocessing: images must be (N, C, H, W) with C = 1 or 3, got ({string.Join(", ", t.shape)})");
    }
}

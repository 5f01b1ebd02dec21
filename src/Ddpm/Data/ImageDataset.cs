using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Data;

/// <summary>
/// A set of images held in memory as one float32 CPU tensor of shape (N, C, H, W) with values in [-1, 1],
/// optionally with one integer label per image. The dataset owns the tensor: it is detached from any
/// dispose scope when the dataset is built, and freed by <see cref="Dispose"/>.
/// </summary>
public sealed class ImageDataset : IDisposable
{
    /// <summary>All images, (N, C, H, W), float32, CPU, values in [-1, 1].</summary>
    public Tensor Images { get; }

    /// <summary>One label per image (e.g. the digit class), or null when the source has none.</summary>
    public long[]? Labels { get; }

    /// <summary>Where the images came from (a file or folder path, or a description).</summary>
    public string Source { get; }

    public int Count { get; }
    public int Channels { get; }
    public int Height { get; }
    public int Width { get; }

    private bool _disposed;

    /// <summary>
    /// Wraps <paramref name="images"/> (N, C, H, W), which must be float32 with C = 1 or 3, and takes ownership of it.
    /// A tensor on another device is copied to the CPU (the copy is owned; the original is left to the caller).
    /// Values are not checked against [-1, 1] (that would cost a pass over the data); producers guarantee it.
    /// </summary>
    public ImageDataset(Tensor images, long[]? labels, string source)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4)
            throw new ArgumentException($"images must be 4-D (N, C, H, W); got shape [{string.Join(", ", images.shape)}]", nameof(images));
        if (images.dtype != ScalarType.Float32)
            throw new ArgumentException($"images must be float32; got {images.dtype}", nameof(images));
        long n = images.shape[0], c = images.shape[1], h = images.shape[2], w = images.shape[3];
        if (c != 1 && c != 3)
            throw new ArgumentException($"images must have 1 or 3 channels; got {c}", nameof(images));
        if (n < 1 || h < 1 || w < 1 || n > int.MaxValue || h > int.MaxValue || w > int.MaxValue)
            throw new ArgumentException($"images shape [{string.Join(", ", images.shape)}] is empty or too large", nameof(images));
        if (labels is not null && labels.LongLength != n)
            throw new ArgumentException($"{labels.LongLength} labels for {n} images", nameof(labels));

        var owned = images.device_type == DeviceType.CPU ? images : images.cpu();
        Images = owned.DetachFromDisposeScope();
        Labels = labels;
        Source = source ?? "";
        Count = (int)n;
        Channels = (int)c;
        Height = (int)h;
        Width = (int)w;
    }

    /// <summary>Builds a dataset from a tensor (see the constructor); the dataset takes ownership of it.</summary>
    public static ImageDataset FromTensor(Tensor images, long[]? labels = null, string source = "tensor")
        => new(images, labels, source);

    /// <summary>The label of image <paramref name="index"/>, or null when there are no labels.</summary>
    public long? LabelAt(int index) => Labels?[index];

    public override string ToString()
        => $"{Count} images {Channels}x{Height}x{Width}{(Labels is null ? "" : ", labelled")} from {Source}";

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Images.Dispose();
    }
}

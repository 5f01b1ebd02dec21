using static TorchSharp.torch;

namespace Ddpm.Data;

/// <summary>
/// One entry point for training data: a file is read as IDX, a folder as images, and the result is brought to the requested
/// size and channel count.
/// <list type="bullet">
/// <item>A file: <see cref="Idx.ReadImages"/> (grey, its own size, sibling labels attached).</item>
/// <item>A folder that directly holds an IDX images file (a name containing "images-idx3" or "images.idx3", optionally .gz), such
/// as the bundled data/mnist-10k: that file; when several are there, the one whose name starts with "train", else an error.</item>
/// <item>Any other folder: <see cref="ImageFolderReader.Read"/>; by default at the data's own size (the first image's shorter side)
/// and channel count (grey when every image is stored grey, else RGB).</item>
/// </list>
/// For IDX data, an imageSize different from the stored size resamples with bilinear interpolation (torch.nn.functional.interpolate,
/// align_corners = false, no antialiasing); a non-square image is resized so its shorter side is imageSize, then centre-cropped.
/// channels = 3 for grey data replicates the grey channel; channels = 1 for RGB data takes the BT.601 luminance.
/// </summary>
public static class DatasetLoader
{
    public static ImageDataset Load(string path, int? imageSize = null, int? channels = null, int? maxCount = null)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new DdpmException("data not found: (empty path)");
        if (imageSize is int s && (s < 1 || s > 4096))
            throw new DdpmException($"image size {s}: must be between 1 and 4096");
        if (channels is int c && c is not (1 or 3))
            throw new DdpmException($"channels {c}: must be 1 (grey) or 3 (RGB)");
        if (maxCount is < 1)
            throw new DdpmException($"max count {maxCount}: must be at least 1");

        if (Directory.Exists(path))
        {
            var idx = FindIdxImages(path);
            if (idx is null)
                return ImageFolderReader.Read(path, imageSize, channels, maxCount);
            path = idx;
        }
        else if (!File.Exists(path))
        {
            throw new DdpmException($"data not found: {path}");
        }

        var data = Idx.ReadImages(path, maxCount);
        return Conform(data, imageSize, channels);
    }

    /// <summary>The IDX images file directly inside <paramref name="folder"/>, or null when there is none (see the class summary).</summary>
    public static string? FindIdxImages(string folder)
    {
        var found = Directory.EnumerateFiles(folder)
            .Where(p =>
            {
                string n = Path.GetFileName(p);
                return n.Contains("images-idx3", StringComparison.OrdinalIgnoreCase) || n.Contains("images.idx3", StringComparison.OrdinalIgnoreCase);
            })
            .OrderBy(p => p, StringComparer.Ordinal)
            .ToList();
        // The same data raw and gzipped counts once: prefer the .gz.
        found = found
            .GroupBy(p => p.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? p[..^3] : p, StringComparer.Ordinal)
            .Select(g => g.FirstOrDefault(p => p.EndsWith(".gz", StringComparison.OrdinalIgnoreCase)) ?? g.First())
            .ToList();
        if (found.Count <= 1) return found.FirstOrDefault();
        var train = found.Where(p => Path.GetFileName(p).StartsWith("train", StringComparison.OrdinalIgnoreCase)).ToList();
        if (train.Count == 1) return train[0];
        throw new DdpmException($"{folder}: several IDX images files ({string.Join(", ", found.Select(Path.GetFileName))}); name one of them");
    }

    /// <summary>
    /// Resizes and converts a dataset to the requested size and channel count (null: keep). Takes ownership of <paramref name="data"/>:
    /// returns it unchanged when nothing needs doing, otherwise disposes it and returns a new dataset (same labels and source).
    /// </summary>
    public static ImageDataset Conform(ImageDataset data, int? imageSize, int? channels)
    {
        bool resize = imageSize is int s && (s != data.Height || s != data.Width);
        bool recolour = channels is int c && c != data.Channels;
        if (!resize && !recolour) return data;

        Tensor result;
        using (var scope = NewDisposeScope())
        {
            var x = data.Images;
            if (resize)
            {
                int size = imageSize!.Value;
                long h = data.Height, w = data.Width;
                long nh = h <= w ? size : (long)Math.Round((double)h * size / w);
                long nw = h <= w ? (long)Math.Round((double)w * size / h) : size;
                nh = Math.Max(nh, size);
                nw = Math.Max(nw, size);
                x = nn.functional.interpolate(x, new long[] { nh, nw }, mode: InterpolationMode.Bilinear, align_corners: false);
                if (nh != size || nw != size)
                    x = x.narrow(2, (nh - size) / 2, size).narrow(3, (nw - size) / 2, size);
            }
            if (recolour)
            {
                if (channels == 3)
                    x = x.expand(-1, 3, -1, -1);
                else
                {
                    var weights = tensor(new float[] { 0.299f, 0.587f, 0.114f }).view(1, 3, 1, 1);
                    x = (x.add(1).mul(127.5).mul(weights).sum(1, keepdim: true)).div(127.5).sub(1);
                }
            }
            result = x.contiguous().clone().MoveToOuterDisposeScope();
        }
        var conformed = new ImageDataset(result, data.Labels, data.Source);
        data.Dispose();
        return conformed;
    }
}

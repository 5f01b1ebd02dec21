using System.Globalization;

namespace Ddpm.Models;

/// <summary>Named U-Net configurations: the paper's two models and small ones that train on a CPU.</summary>
public static class Presets
{
    /// <summary>The preset used when none is named.</summary>
    public const string Default = "mnist-tiny";

    private sealed record Preset(string Name, string Summary, Func<UNetConfig> Build);

    // The CPU presets were timed on 2 cores (batch 64, forward+backward+Adam, before glibc's malloc thresholds were
    // set at start): mnist-small about 80-95 images/s, cifar-small about 70 images/s, mnist-tiny 118 to 270 on
    // different days of the same machine; mnist-tiny about 210 or 420 with the thresholds set (the machine's two
    // states). It has a quarter of mnist-small's multiply-adds; its 16 and 32 channels stay on oneDNN's fast
    // convolution path, and since SafeConv trusts libtorch's input gradient from 16 output channels, its backward
    // too. 8 groups keep 4
    // channels per group at ch 32, as the paper's 32 groups do at ch 128. mnist-tiny is the default because, in the
    // default run's minutes, four times the steps of a quarter of the network beat the larger one (issue 12,
    // experiments/results/quality/round2 and round3).
    private static readonly Preset[] All =
    [
        new("mnist-tiny", "the default: CPU model for 28x28 grey images, mnist-small at half the width (ch 16)", () => new UNetConfig
        {
            InChannels = 1, ImageSize = 28, BaseChannels = 16, ChannelMult = [1, 2, 2], NumResBlocks = 1,
            AttentionResolutions = [7], Dropout = 0.0, NormGroups = 8,
        }),
        new("mnist-small", "CPU model for 28x28 grey images (levels 28, 14, 7; attention at 7)", () => new UNetConfig
        {
            InChannels = 1, ImageSize = 28, BaseChannels = 32, ChannelMult = [1, 2, 2], NumResBlocks = 1,
            AttentionResolutions = [7], Dropout = 0.0, NormGroups = 8,
        }),
        new("cifar-small", "CPU model for 32x32 RGB images (levels 32, 16, 8; attention at 8)", () => new UNetConfig
        {
            InChannels = 3, ImageSize = 32, BaseChannels = 32, ChannelMult = [1, 2, 2], NumResBlocks = 1,
            AttentionResolutions = [8], Dropout = 0.1, NormGroups = 8,
        }),
        new("ho-cifar10", "the paper's CIFAR-10 model (32x32 RGB, ch 128, mult 1,2,2,2, 2 res blocks, attention at 16, dropout 0.1)", () => new UNetConfig
        {
            InChannels = 3, ImageSize = 32, BaseChannels = 128, ChannelMult = [1, 2, 2, 2], NumResBlocks = 2,
            AttentionResolutions = [16], Dropout = 0.1, NormGroups = 32,
        }),
        new("ho-256", "the paper's 256x256 model (CelebA-HQ, LSUN: RGB, ch 128, mult 1,1,2,2,4,4, 2 res blocks, attention at 16, dropout 0)", () => new UNetConfig
        {
            InChannels = 3, ImageSize = 256, BaseChannels = 128, ChannelMult = [1, 1, 2, 2, 4, 4], NumResBlocks = 2,
            AttentionResolutions = [16], Dropout = 0.0, NormGroups = 32,
        }),
    ];

    /// <summary>Names of all presets.</summary>
    public static IReadOnlyList<string> Names { get; } = All.Select(p => p.Name).ToArray();

    /// <summary>
    /// A fresh copy of preset <paramref name="name"/>. <paramref name="imageSize"/> replaces the image size; attention then
    /// stays at the same levels (e.g. the lowest), its resolutions scaled with the image. <paramref name="channels"/> replaces
    /// the image channels (input and output). Throws <see cref="DdpmException"/> for an unknown name or an impossible size.
    /// </summary>
    public static UNetConfig Get(string name, int? imageSize = null, int? channels = null)
    {
        var preset = Find(name);
        var config = preset.Build();
        if (imageSize is int size)
        {
            if (size <= 0) throw new DdpmException($"preset {preset.Name}: image size must be positive (got {size})");
            var attentionLevels = Enumerable.Range(0, config.Levels).Where(config.HasAttentionAt).ToArray();
            config.ImageSize = size;
            config.AttentionResolutions = attentionLevels.Select(config.ResolutionAt).ToArray();
        }
        if (channels is int ch)
        {
            if (ch <= 0) throw new DdpmException($"preset {preset.Name}: channels must be positive (got {ch})");
            config.InChannels = ch;
            config.OutChannels = 0;
        }
        try
        {
            config.Validate();
        }
        catch (DdpmException e)
        {
            throw new DdpmException($"preset {preset.Name}: {e.Message}", e);
        }
        return config;
    }

    /// <summary>One line describing preset <paramref name="name"/>: what it is, its parameters and its cost per image.</summary>
    public static string Describe(string name)
    {
        var preset = Find(name);
        var c = preset.Build();
        string attn = c.AttentionResolutions.Length == 0 ? "none" : string.Join(",", c.AttentionResolutions);
        return string.Create(CultureInfo.InvariantCulture,
            $"{preset.Name}: {preset.Summary}; {c.InChannels} ch {c.ImageSize}x{c.ImageSize}, ch {c.BaseChannels}, mult {string.Join(",", c.ChannelMult)}, " +
            $"{c.NumResBlocks} res blocks, attention {attn}, dropout {c.Dropout}, {c.NormGroups} norm groups; " +
            $"{ModelStats.CountParameters(c) / 1e6:0.00}M parameters, {ModelStats.Gflops(c):0.###} GFLOPs per image");
    }

    private static Preset Find(string name)
    {
        var key = (name ?? "").Trim();
        return All.FirstOrDefault(p => string.Equals(p.Name, key, StringComparison.OrdinalIgnoreCase))
            ?? throw new DdpmException($"unknown model preset '{name}'; known presets: {string.Join(", ", Names)}");
    }
}

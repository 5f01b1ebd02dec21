using System.Globalization;

namespace Ddpm.Models;

/// <summary>
/// Shape of the paper's U-Net (Ho et al. 2020, <c>diffusion_tf/models/unet.py</c>). Plain get/set properties so that
/// System.Text.Json round-trips it into checkpoints. A default instance is the paper's CIFAR-10 model.
/// </summary>
public sealed class UNetConfig
{
    /// <summary>Image channels fed to the network: 1 (grey) or 3 (RGB).</summary>
    public int InChannels { get; set; } = 3;

    /// <summary>Output channels; 0 means the same as <see cref="InChannels"/> (2x for a learned variance).</summary>
    public int OutChannels { get; set; }

    /// <summary>Side of the square images the model is built for; it fixes the feature-map sizes of every level.</summary>
    public int ImageSize { get; set; } = 32;

    /// <summary>Base channel count <c>ch</c>; level i has <c>ch * ChannelMult[i]</c> channels, the time embedding 4 ch.</summary>
    public int BaseChannels { get; set; } = 128;

    /// <summary>Channel multiplier per resolution level; its length is the number of levels.</summary>
    public int[] ChannelMult { get; set; } = [1, 2, 2, 2];

    /// <summary>Residual blocks per level on the way down (the way up has one more per level).</summary>
    public int NumResBlocks { get; set; } = 2;

    /// <summary>Feature-map sizes (e.g. 16 for 16x16) at which self-attention follows every residual block.</summary>
    public int[] AttentionResolutions { get; set; } = [16];

    /// <summary>Dropout probability inside the residual blocks (paper: 0.1 on CIFAR-10, 0 at 256x256).</summary>
    public double Dropout { get; set; } = 0.1;

    /// <summary>Groups of every GroupNorm (the paper: 32). Every channel count must be a multiple of it.</summary>
    public int NormGroups { get; set; } = 32;

    /// <summary>True: down-sampling by a stride-2 conv and a conv after up-sampling (the paper); false: average pooling and plain nearest up-sampling.</summary>
    public bool ResampleWithConv { get; set; } = true;

    /// <summary>Output channels actually produced: <see cref="OutChannels"/>, or <see cref="InChannels"/> when that is 0.</summary>
    public int EffectiveOutChannels => OutChannels == 0 ? InChannels : OutChannels;

    /// <summary>Number of resolution levels (the length of <see cref="ChannelMult"/>).</summary>
    public int Levels => ChannelMult?.Length ?? 0;

    /// <summary>Width of the time embedding (4 ch, as in the paper).</summary>
    public int TimeEmbeddingChannels => 4 * BaseChannels;

    /// <summary>Side of the feature maps at level <paramref name="level"/> (ImageSize / 2^level).</summary>
    public int ResolutionAt(int level) => ImageSize >> level;

    /// <summary>Whether attention blocks sit at level <paramref name="level"/>.</summary>
    public bool HasAttentionAt(int level) => AttentionResolutions.Contains(ResolutionAt(level));

    /// <summary>Channels of level <paramref name="level"/> (ch * ChannelMult[level]).</summary>
    public int ChannelsAt(int level) => BaseChannels * ChannelMult[level];

    /// <summary>A deep copy.</summary>
    public UNetConfig Clone() => new()
    {
        InChannels = InChannels,
        OutChannels = OutChannels,
        ImageSize = ImageSize,
        BaseChannels = BaseChannels,
        ChannelMult = (int[])ChannelMult.Clone(),
        NumResBlocks = NumResBlocks,
        AttentionResolutions = (int[])AttentionResolutions.Clone(),
        Dropout = Dropout,
        NormGroups = NormGroups,
        ResampleWithConv = ResampleWithConv,
    };

    /// <summary>Throws <see cref="DdpmException"/> (one line) when the settings cannot make a model.</summary>
    public void Validate()
    {
        static void Fail(string message) => throw new DdpmException("U-Net config: " + message);

        if (InChannels <= 0) Fail($"InChannels must be positive (got {InChannels})");
        if (OutChannels < 0) Fail($"OutChannels must be 0 (same as InChannels) or positive (got {OutChannels})");
        if (ImageSize <= 0) Fail($"ImageSize must be positive (got {ImageSize})");
        if (BaseChannels < 4) Fail($"BaseChannels must be at least 4 for the sinusoidal time embedding (got {BaseChannels})");
        if (ChannelMult is null || ChannelMult.Length == 0) Fail("ChannelMult must list at least one level");
        if (NumResBlocks <= 0) Fail($"NumResBlocks must be positive (got {NumResBlocks})");
        if (AttentionResolutions is null) Fail("AttentionResolutions must be a list (empty for no attention)");
        if (double.IsNaN(Dropout) || Dropout < 0 || Dropout >= 1)
            Fail($"Dropout must be in [0, 1) (got {Dropout.ToString(CultureInfo.InvariantCulture)})");
        if (NormGroups <= 0) Fail($"NormGroups must be positive (got {NormGroups})");

        for (int i = 0; i < ChannelMult!.Length; i++)
        {
            if (ChannelMult[i] <= 0) Fail($"ChannelMult[{i}] must be positive (got {ChannelMult[i]})");
            long c = (long)BaseChannels * ChannelMult[i];
            if (c > int.MaxValue) Fail($"ChannelMult[{i}] x BaseChannels is too large ({c})");
        }
        if (BaseChannels % NormGroups != 0)
            Fail($"BaseChannels {BaseChannels} is not divisible by NormGroups {NormGroups}");
        for (int i = 0; i < ChannelMult.Length; i++)
            if (ChannelsAt(i) % NormGroups != 0)
                Fail($"level {i} has {ChannelsAt(i)} channels (BaseChannels {BaseChannels} x ChannelMult[{i}] {ChannelMult[i]}), not divisible by NormGroups {NormGroups}");

        int levels = ChannelMult.Length;
        if (levels > 30 || ImageSize % (1 << (levels - 1)) != 0)
            Fail($"ImageSize {ImageSize} is not divisible by 2^{levels - 1} = {(levels > 30 ? "too much" : (1 << (levels - 1)).ToString(CultureInfo.InvariantCulture))} ({levels} levels halve it {levels - 1} times)");

        var sizes = Enumerable.Range(0, levels).Select(ResolutionAt).ToArray();
        foreach (int r in AttentionResolutions!)
            if (!sizes.Contains(r))
                Fail($"AttentionResolutions contains {r}, but the feature maps of this {ImageSize}x{ImageSize} model are {string.Join(", ", sizes)}");
    }
}

using System.Globalization;

namespace Ddpm.Models;

/// <summary>
/// Shape of the paper's U-Net (Ho et al. 2020, <c>diffusion_tf/models/unet.py</c>). Plain get/set properties so that
/// System.Text.Json round-trips it into checkpoints. A default instance is the paper's CIFAR-10 model.
/// <para>The layout settings from <see cref="NormEps"/> on let the same network express HuggingFace diffusers'
/// <c>UNet2DModel</c> checkpoints (which keep the block structure but differ in these details); their defaults are the
/// original network, so a configuration or checkpoint written before they existed (no such keys) builds the same model.</para>
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

    /// <summary>Epsilon of every GroupNorm: 1e-6 in the original code; diffusers' <c>norm_eps</c> defaults to 1e-5.</summary>
    public double NormEps { get; set; } = 1e-6;

    /// <summary>
    /// Order of the sinusoidal time code: false = [sin, cos] (the original), true = [cos, sin] (diffusers'
    /// <c>flip_sin_to_cos</c>, true by default there). The dense layer after it sees the halves in this order.
    /// </summary>
    public bool FlipSinToCos { get; set; }

    /// <summary>
    /// diffusers' <c>freq_shift</c>: frequency i of the time code is exp(-ln(10000) i / (half - FreqShift)), half =
    /// <see cref="BaseChannels"/> / 2. The original divides by half - 1 (1); diffusers' default is 0.
    /// </summary>
    public double FreqShift { get; set; } = 1;

    /// <summary>
    /// How the stride-2 down-sampling conv pads (with <see cref="ResampleWithConv"/> only; ignored by average pooling):
    /// 0 = right and bottom by one, then no padding (the original, TensorFlow's 'SAME'); 1 = one on every side
    /// (diffusers' <c>downsample_padding=1</c>). The two see the input shifted by one pixel, so weights of one do not fit the other.
    /// </summary>
    public int DownsamplePadding { get; set; }

    /// <summary>
    /// Channels per attention head: 0 = one head over all channels (the paper); otherwise every attention block (the
    /// middle one included) splits its C channels into C / AttentionHeadChannels heads (diffusers' <c>attention_head_dim</c>).
    /// </summary>
    public int AttentionHeadChannels { get; set; }

    /// <summary>Whether the middle block has self-attention between its two residual blocks (the paper: yes; diffusers' <c>add_attention=false</c>: no).</summary>
    public bool MidAttention { get; set; } = true;

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

    /// <summary>Heads of an attention block over <paramref name="channels"/> channels (1 when <see cref="AttentionHeadChannels"/> is 0).</summary>
    public int AttentionHeads(int channels) => AttentionHeadChannels > 0 ? channels / AttentionHeadChannels : 1;

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
        NormEps = NormEps,
        FlipSinToCos = FlipSinToCos,
        FreqShift = FreqShift,
        DownsamplePadding = DownsamplePadding,
        AttentionHeadChannels = AttentionHeadChannels,
        MidAttention = MidAttention,
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
        if (!double.IsFinite(NormEps) || NormEps <= 0)
            Fail($"NormEps must be a positive number (got {NormEps.ToString(CultureInfo.InvariantCulture)})");
        if (!double.IsFinite(FreqShift) || BaseChannels / 2 - FreqShift <= 0)
            Fail($"FreqShift must be a number below BaseChannels / 2 = {BaseChannels / 2} (got {FreqShift.ToString(CultureInfo.InvariantCulture)})");
        if (DownsamplePadding is not (0 or 1))
            Fail($"DownsamplePadding must be 0 (right and bottom, the original) or 1 (every side) (got {DownsamplePadding})");
        if (AttentionHeadChannels < 0)
            Fail($"AttentionHeadChannels must be 0 (one head) or positive (got {AttentionHeadChannels})");

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

        if (AttentionHeadChannels > 0)
        {
            for (int i = 0; i < levels; i++)
                if (HasAttentionAt(i) && ChannelsAt(i) % AttentionHeadChannels != 0)
                    Fail($"level {i} has attention over {ChannelsAt(i)} channels, not divisible by AttentionHeadChannels {AttentionHeadChannels}");
            if (MidAttention && ChannelsAt(levels - 1) % AttentionHeadChannels != 0)
                Fail($"the middle block has attention over {ChannelsAt(levels - 1)} channels (level {levels - 1}), not divisible by AttentionHeadChannels {AttentionHeadChannels}");
        }
    }
}

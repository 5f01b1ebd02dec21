using System.Text.Json;
using Ddpm.Models;

namespace Ddpm.Tests.Models;

public class UNetConfigTests
{
    private static UNetConfig Small() => new()
    {
        InChannels = 1, ImageSize = 28, BaseChannels = 32, ChannelMult = [1, 2, 2], NumResBlocks = 1,
        AttentionResolutions = [7], Dropout = 0, NormGroups = 8,
    };

    [Fact]
    public void ValidSmallConfigPasses() => Small().Validate();

    [Theory]
    [InlineData("size", "not divisible by 2^2")]
    [InlineData("groups", "not divisible by NormGroups")]
    [InlineData("emptyMult", "ChannelMult")]
    [InlineData("zeroMult", "ChannelMult[1]")]
    [InlineData("inChannels", "InChannels")]
    [InlineData("outChannels", "OutChannels")]
    [InlineData("resBlocks", "NumResBlocks")]
    [InlineData("dropout", "Dropout")]
    [InlineData("attention", "AttentionResolutions contains 16")]
    [InlineData("baseChannels", "BaseChannels")]
    [InlineData("normGroups", "NormGroups must be positive")]
    [InlineData("imageSize", "ImageSize must be positive")]
    [InlineData("normEps", "NormEps must be a positive number (got 0)")]
    [InlineData("normEpsNaN", "NormEps must be a positive number (got NaN)")]
    [InlineData("freqShift", "FreqShift must be a number below BaseChannels / 2 = 16 (got 16)")]
    [InlineData("freqShiftInfinite", "FreqShift must be a number below")]
    [InlineData("downsamplePadding", "DownsamplePadding must be 0")]
    [InlineData("headChannels", "level 0 has attention over 32 channels, not divisible by AttentionHeadChannels 64")]
    [InlineData("midHeadChannels", "the middle block has attention over 64 channels (level 2), not divisible by AttentionHeadChannels 48")]
    [InlineData("negativeHeadChannels", "AttentionHeadChannels must be 0 (one head) or positive")]
    public void ImpossibleSettingsThrowOneLineErrors(string what, string expected)
    {
        var c = Small();
        switch (what)
        {
            case "size": c.ImageSize = 30; break;               // 30 / 4 is not whole
            case "groups": c.NormGroups = 24; break;            // 32 % 24 != 0
            case "emptyMult": c.ChannelMult = []; break;
            case "zeroMult": c.ChannelMult = [1, 0, 2]; break;
            case "inChannels": c.InChannels = 0; break;
            case "outChannels": c.OutChannels = -1; break;
            case "resBlocks": c.NumResBlocks = 0; break;
            case "dropout": c.Dropout = 1.0; break;
            case "attention": c.AttentionResolutions = [16]; break; // feature maps are 28, 14, 7
            case "baseChannels": c.BaseChannels = 0; break;
            case "normGroups": c.NormGroups = 0; break;
            case "imageSize": c.ImageSize = -28; break;
            case "normEps": c.NormEps = 0; break;
            case "normEpsNaN": c.NormEps = double.NaN; break;
            case "freqShift": c.FreqShift = 16; break;          // half = 16: no positive denominator
            case "freqShiftInfinite": c.FreqShift = double.NegativeInfinity; break;
            case "downsamplePadding": c.DownsamplePadding = 2; break;
            case "headChannels": c.AttentionResolutions = [28, 7]; c.AttentionHeadChannels = 64; break; // 32 channels at 28x28
            case "midHeadChannels": c.AttentionResolutions = []; c.AttentionHeadChannels = 48; break;    // only the middle attends
            case "negativeHeadChannels": c.AttentionHeadChannels = -8; break;
        }
        var e = Assert.Throws<DdpmException>(c.Validate);
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        // The model refuses the same config.
        Assert.Throws<DdpmException>(() => new UNet(c));
    }

    [Fact]
    public void HeadsNeedNotDivideTheMiddleWithoutMiddleAttention()
    {
        var c = Small();
        c.AttentionResolutions = [];
        c.AttentionHeadChannels = 48;
        c.MidAttention = false; // nothing attends, so no channel count needs to split into heads of 48
        c.Validate();
        c.DownsamplePadding = 1;
        c.ResampleWithConv = false; // the padding is ignored by average pooling, and allowed with it
        c.Validate();
        Assert.Equal(1, new UNetConfig().AttentionHeads(256));
        c.AttentionHeadChannels = 16;
        Assert.Equal(4, c.AttentionHeads(64));
    }

    [Fact]
    public void EffectiveOutChannelsDefaultsToInChannels()
    {
        var c = Small();
        Assert.Equal(1, c.EffectiveOutChannels);
        c.OutChannels = 2;
        Assert.Equal(2, c.EffectiveOutChannels);
    }

    [Fact]
    public void JsonRoundTripKeepsEverySetting()
    {
        var c = new UNetConfig
        {
            InChannels = 3, OutChannels = 6, ImageSize = 64, BaseChannels = 96, ChannelMult = [1, 2, 3, 4], NumResBlocks = 3,
            AttentionResolutions = [16, 8], Dropout = 0.25, NormGroups = 16, ResampleWithConv = false,
            NormEps = 1e-5, FlipSinToCos = true, FreqShift = 0, DownsamplePadding = 1, AttentionHeadChannels = 32, MidAttention = false,
        };
        var json = JsonSerializer.Serialize(c);
        var back = JsonSerializer.Deserialize<UNetConfig>(json)!;
        Assert.Equal(JsonSerializer.Serialize(back), json);
        Assert.Equal(6, back.OutChannels);
        Assert.Equal([1, 2, 3, 4], back.ChannelMult);
        Assert.Equal([16, 8], back.AttentionResolutions);
        Assert.Equal(0.25, back.Dropout);
        Assert.False(back.ResampleWithConv);
        Assert.Equal((1e-5, true, 0.0, 1, 32, false),
            (back.NormEps, back.FlipSinToCos, back.FreqShift, back.DownsamplePadding, back.AttentionHeadChannels, back.MidAttention));
        back.Validate();
        Assert.Equal(json, JsonSerializer.Serialize(c.Clone())); // Clone copies every setting
    }

    /// <summary>A model object as config.json and checkpoints held it before the layout settings existed.</summary>
    private const string JsonBeforeLayoutSettings = """
        {
          "in_channels": 1, "out_channels": 0, "image_size": 28, "base_channels": 32, "channel_mult": [1, 2, 2],
          "num_res_blocks": 1, "attention_resolutions": [7], "dropout": 0, "norm_groups": 8, "resample_with_conv": true,
          "effective_out_channels": 1, "levels": 3, "time_embedding_channels": 128
        }
        """;

    [Fact]
    public void JsonWithoutTheLayoutKeysIsTheOriginalLayout()
    {
        var old = JsonSerializer.Deserialize<UNetConfig>(JsonBeforeLayoutSettings, Ddpm.Runs.TrainConfig.Json)!; // the strict reader of config.json
        Assert.Equal((1e-6, false, 1.0, 0, 0, true),
            (old.NormEps, old.FlipSinToCos, old.FreqShift, old.DownsamplePadding, old.AttentionHeadChannels, old.MidAttention));
        Assert.Equal(JsonSerializer.Serialize(Presets.Get("mnist-small")), JsonSerializer.Serialize(old));

        // Written back, the model object gains exactly the six keys, in snake_case, with the original's values.
        var written = System.Text.Json.Nodes.JsonNode.Parse(JsonSerializer.Serialize(old, Ddpm.Runs.TrainConfig.Json))!.AsObject();
        var before = System.Text.Json.Nodes.JsonNode.Parse(JsonBeforeLayoutSettings)!.AsObject();
        string[] added = ["norm_eps", "flip_sin_to_cos", "freq_shift", "downsample_padding", "attention_head_channels", "mid_attention"];
        Assert.Equal(added, written.Select(kv => kv.Key).Except(before.Select(kv => kv.Key)));
        Assert.Equal(1e-6, written["norm_eps"]!.GetValue<double>());
        Assert.Equal(1.0, written["freq_shift"]!.GetValue<double>());
        Assert.True(written["mid_attention"]!.GetValue<bool>());
    }

    [Fact]
    public void DefaultIsThePapersCifar10Model()
    {
        var d = JsonSerializer.Serialize(new UNetConfig());
        Assert.Equal(JsonSerializer.Serialize(Presets.Get("ho-cifar10")), d);
    }
}

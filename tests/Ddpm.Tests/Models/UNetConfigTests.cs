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
        }
        var e = Assert.Throws<DdpmException>(c.Validate);
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        // The model refuses the same config.
        Assert.Throws<DdpmException>(() => new UNet(c));
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
        };
        var json = JsonSerializer.Serialize(c);
        var back = JsonSerializer.Deserialize<UNetConfig>(json)!;
        Assert.Equal(JsonSerializer.Serialize(back), json);
        Assert.Equal(6, back.OutChannels);
        Assert.Equal([1, 2, 3, 4], back.ChannelMult);
        Assert.Equal([16, 8], back.AttentionResolutions);
        Assert.Equal(0.25, back.Dropout);
        Assert.False(back.ResampleWithConv);
        back.Validate();
    }

    [Fact]
    public void DefaultIsThePapersCifar10Model()
    {
        var d = JsonSerializer.Serialize(new UNetConfig());
        Assert.Equal(JsonSerializer.Serialize(Presets.Get("ho-cifar10")), d);
    }
}

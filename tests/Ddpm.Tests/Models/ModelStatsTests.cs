using Ddpm.Models;
using Ddpm.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Tests.Models;

public class ModelStatsTests
{
    /// <summary>MACs counted by running the model on one image and hooking every Conv2d, Linear and AttnBlock.</summary>
    private static long MeasuredMacs(UNetConfig config)
    {
        using var scope = NewDisposeScope();
        using var m = new UNet(config);
        long macs = 0;
        var removers = new List<Action>();
        foreach (var (_, mod) in m.named_modules())
        {
            switch (mod)
            {
                case Conv2d conv:
                    var hc = conv.register_forward_hook((_, _, output) =>
                    {
                        macs += conv.weight!.numel() * output.shape[2] * output.shape[3];
                        return output;
                    });
                    removers.Add(() => hc.remove());
                    break;
                case Linear lin:
                    var hl = lin.register_forward_hook((_, input, output) =>
                    {
                        macs += lin.weight!.numel() * input.shape[0];
                        return output;
                    });
                    removers.Add(() => hl.remove());
                    break;
                case AttnBlock attn:
                    var ha = attn.register_forward_hook((_, input, output) =>
                    {
                        // Per head: q k^T and the weighted sum of v, HW x HW x d each.
                        long hw = input.shape[2] * input.shape[3], d = input.shape[1] / attn.Heads;
                        macs += attn.Heads * 2 * hw * hw * d;
                        return output;
                    });
                    removers.Add(() => ha.remove());
                    break;
            }
        }
        using (no_grad()) m.call(zeros(1, config.InChannels, config.ImageSize, config.ImageSize), zeros(1, ScalarType.Int64));
        foreach (var remove in removers) remove();
        return macs;
    }

    private static UNetConfig Layout(bool resampleWithConv, int downsamplePadding = 0, int headChannels = 0, bool midAttention = true) => new()
    {
        // Channel counts stay multiples of 16 so every conv runs through Conv2d.forward, where the hooks see it
        // (SafeConv computes odd multiples of 8 without calling the module).
        InChannels = 3, OutChannels = 6, ImageSize = 12, BaseChannels = 16, ChannelMult = [1, 2, 3], NumResBlocks = 2,
        AttentionResolutions = [6, 3], Dropout = 0, NormGroups = 4, ResampleWithConv = resampleWithConv,
        DownsamplePadding = downsamplePadding, AttentionHeadChannels = headChannels, MidAttention = midAttention,
    };

    [Theory]
    [InlineData(true, 0, 0, true)]
    [InlineData(false, 0, 0, true)]
    [InlineData(true, 1, 8, true)]    // diffusers' padding, heads of 8 channels (4 and 6 heads)
    [InlineData(true, 1, 16, false)]  // no middle attention
    [InlineData(false, 1, 0, false)]
    public void CountMacsAgreesWithTheBuiltModel(bool resampleWithConv, int downsamplePadding, int headChannels, bool midAttention)
    {
        var config = Layout(resampleWithConv, downsamplePadding, headChannels, midAttention);
        long measured = MeasuredMacs(config);
        Assert.True(measured > 0);
        Assert.Equal(measured, ModelStats.CountMacs(config));
        Assert.Equal(2.0 * measured / 1e9, ModelStats.Gflops(config), 12);
    }

    [Theory]
    [InlineData(true, 0, 0, true)]
    [InlineData(false, 1, 16, true)]
    [InlineData(true, 1, 8, false)]
    [InlineData(false, 0, 0, false)]
    public void CountParametersFromTheConfigEqualsTheBuiltModel(bool resampleWithConv, int downsamplePadding, int headChannels, bool midAttention)
    {
        var config = Layout(resampleWithConv, downsamplePadding, headChannels, midAttention);
        using var m = new UNet(config);
        Assert.Equal(ModelStats.CountParameters(m), ModelStats.CountParameters(config));
    }

    [Fact]
    public void LayoutSettingsChangeTheCountsOnlyWhereTheyChangeTheNetwork()
    {
        // Middle of Layout(): 48 channels at 3x3 (9 positions); attention at 6x6 (32 channels) and 3x3 (48 channels), 2 blocks down and 3 up at each.
        var original = Layout(true);
        var heads = Layout(true, headChannels: 16);     // 2 heads at 32 channels, 3 at 48
        var noMid = Layout(true, midAttention: false);
        var padded = Layout(true, downsamplePadding: 1);
        long attnParams = 2 * 48 + 4 * (48 * 48 + 48);
        Assert.Equal(ModelStats.CountParameters(original) - attnParams, ModelStats.CountParameters(noMid));
        Assert.Equal(ModelStats.CountParameters(original), ModelStats.CountParameters(heads));
        Assert.Equal(ModelStats.CountParameters(original), ModelStats.CountParameters(padded));

        long attnMacs = 4 * 48 * 48 * 9 + 2 * 9 * 9 * 48;
        Assert.Equal(ModelStats.CountMacs(original) - attnMacs, ModelStats.CountMacs(noMid));
        Assert.Equal(ModelStats.CountMacs(original), ModelStats.CountMacs(heads)); // h heads of C/h channels: the same products
        Assert.Equal(ModelStats.CountMacs(original), ModelStats.CountMacs(padded));

        // Activations: every head keeps its own two HW x HW maps; the middle block no attention's 8 maps of C and 2 of HW x HW.
        long extraMaps = 5 * (2 - 1) * 2 * 36 * 36 + (5 + 1) * (3 - 1) * 2 * 9 * 9; // 6x6: 5 blocks; 3x3: 5 blocks and the middle
        Assert.Equal(ModelStats.CountTrainingActivations(original) + extraMaps, ModelStats.CountTrainingActivations(heads));
        Assert.Equal(ModelStats.CountTrainingActivations(original) - (8 * 48 * 9 + 2 * 9 * 9), ModelStats.CountTrainingActivations(noMid));
    }

    [Fact]
    public void CountMacsAgreesOnTheMnistPreset() =>
        Assert.Equal(MeasuredMacs(Presets.Get("mnist-small")), ModelStats.CountMacs(Presets.Get("mnist-small")));

    [Fact]
    public void HoCifar10CostsAboutSixGigaMacs()
    {
        // The paper's CIFAR-10 model is commonly quoted at about 6 GMACs (12 GFLOPs) per 32x32 image.
        Assert.InRange(ModelStats.Gflops(Presets.Get("ho-cifar10")), 11.5, 13.5);
    }

    [Fact]
    public void CountParametersSumsEveryTensor()
    {
        using var lin = nn.Linear(5, 3);
        Assert.Equal(18, ModelStats.CountParameters(lin));
    }
}

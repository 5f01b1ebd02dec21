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
                        long hw = input.shape[2] * input.shape[3];
                        macs += 2 * hw * hw * input.shape[1];
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

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void CountMacsAgreesWithTheBuiltModel(bool resampleWithConv)
    {
        var config = new UNetConfig
        {
            // Channel counts stay multiples of 16 so every conv runs through Conv2d.forward, where the hooks see it
            // (SafeConv computes odd multiples of 8 without calling the module).
            InChannels = 3, OutChannels = 6, ImageSize = 12, BaseChannels = 16, ChannelMult = [1, 2, 3], NumResBlocks = 2,
            AttentionResolutions = [6, 3], Dropout = 0, NormGroups = 4, ResampleWithConv = resampleWithConv,
        };
        long measured = MeasuredMacs(config);
        Assert.True(measured > 0);
        Assert.Equal(measured, ModelStats.CountMacs(config));
        Assert.Equal(2.0 * measured / 1e9, ModelStats.Gflops(config), 12);
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

using Ddpm.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Runs;

/// <summary>
/// Builds the network a run trains or a pipeline samples with, in place of the configuration's U-Net: a new module on
/// each call, with the diffusion's contract: x_t (B, C, H, W) and t (B,) int64 in; (B, C, H, W) out, or (B, 2C, H, W)
/// when the variance is learned.
/// </summary>
public delegate nn.Module<Tensor, Tensor, Tensor> ModelFactory();

/// <summary>Which network a run's configuration and the caller's factory give.</summary>
public static class RunModels
{
    /// <summary>
    /// <paramref name="custom"/> when given (a checkpoint is loaded into it by its state dict); else the U-Net of
    /// <paramref name="config"/>. A configuration without a U-Net is a custom network's, which needs its factory.
    /// </summary>
    public static ModelFactory Resolve(TrainConfig config, ModelFactory? custom, string where)
    {
        if (custom is not null) return custom;
        if (config.Model is UNetConfig unet) return () => new UNet(unet);
        throw new DdpmException(CustomModelMissing(where));
    }

    /// <summary>The one-line error for a run of a custom network opened without its module.</summary>
    public static string CustomModelMissing(string where) =>
        $"{where}: the run trained a custom network (its configuration has no U-Net), so it loads only into that module: pass its model factory";
}

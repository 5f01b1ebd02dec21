using Ddpm.Interop;
using Ddpm.Models;
using Ddpm.Runs;

namespace Ddpm.Training;

/// <summary>What a fine-tuning run started from (<see cref="TrainConfig.InitFrom"/>), for the record and for messages.</summary>
/// <param name="Format">The checkpoint's format.</param>
/// <param name="Source">The folder or file read (for a run: its checkpoint folder).</param>
/// <param name="WeightsFile">The file the weights came from.</param>
/// <param name="Diffusion">The diffusion settings the checkpoint was trained with.</param>
/// <param name="Step">The optimizer steps the checkpoint's run had done (a run of this project), else 0.</param>
public sealed record PretrainedOrigin(PretrainedFormat Format, string Source, string WeightsFile, DiffusionSettings Diffusion, long Step)
{
    /// <summary>One line, e.g. "diffusers folder models/ddpm-cifar10 (diffusion_pytorch_model.safetensors): linear schedule ..., T = 1000, ...".</summary>
    public string Describe()
    {
        string format = Format switch
        {
            PretrainedFormat.Diffusers => "diffusers folder",
            PretrainedFormat.Original => "original DDPM checkpoint",
            _ => "run checkpoint",
        };
        string weights = Path.GetFileName(WeightsFile) + (Format == PretrainedFormat.Run ? $" of step {Step}" : "");
        return $"{format} {Source} ({weights}): {Diffusion.Describe()}";
    }
}

/// <summary>
/// Fine-tuning: a run that starts from pretrained weights (<see cref="TrainConfig.InitFrom"/>) instead of a random
/// initialisation. The checkpoint fixes the network's layout and what its outputs mean; <see cref="ApplySettings"/>
/// writes both into a configuration the way a recipe does (settings the caller gives explicitly afterwards win), and
/// <see cref="Trainer.Start"/> loads the weights into the network and its EMA with a new optimizer.
/// </summary>
public static class FineTuning
{
    /// <summary>The setting that names the checkpoint.</summary>
    public const string Setting = "init_from";

    /// <summary>
    /// Opens the checkpoint at <paramref name="path"/>: a run's EMA weights (unless the path names its model file), a
    /// diffusers folder's or an original checkpoint's weights. A missing path is a one-line error naming the setting.
    /// </summary>
    public static PretrainedModel Open(string? path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw DdpmException.ForSetting(Setting, ": empty path");
        if (!File.Exists(path) && !Directory.Exists(path)) throw DdpmException.ForSetting(Setting, $"{path}: no such file or folder");
        return PretrainedModel.Open(path, useEma: true);
    }

    /// <summary>
    /// Writes into <paramref name="config"/> what the checkpoint of its <see cref="TrainConfig.InitFrom"/> fixes: the
    /// network (<see cref="TrainConfig.Model"/>; <see cref="TrainConfig.Dropout"/>, when set, still overrides its
    /// dropout) and the diffusion settings (<see cref="DiffusionSettings.Keys"/> and the grid's and the evaluation's
    /// threshold). Returns those diffusion settings. Nothing else changes: data, optimisation and outputs stay the run's.
    /// </summary>
    public static DiffusionSettings ApplySettings(TrainConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        using var pretrained = Open(config.InitFrom);
        ApplySettings(pretrained, config);
        return pretrained.Diffusion;
    }

    /// <summary>The same from a checkpoint already open.</summary>
    public static void ApplySettings(PretrainedModel pretrained, TrainConfig config)
    {
        ArgumentNullException.ThrowIfNull(pretrained);
        ArgumentNullException.ThrowIfNull(config);
        config.Model = pretrained.Model.Clone();
        pretrained.Diffusion.ApplyTo(config);
    }

    /// <summary>
    /// Throws a one-line error when the run's network (<paramref name="run"/>, resolved from its settings) is not the
    /// checkpoint's: every size must agree, the output channels included (a learned variance needs twice the channels).
    /// Only the dropout may differ.
    /// </summary>
    public static void CheckSameNetwork(UNetConfig checkpoint, UNetConfig run, string source)
    {
        var differences = new (string Name, string Checkpoint, string Run)[]
        {
            ("in_channels", $"{checkpoint.InChannels}", $"{run.InChannels}"),
            ("out_channels", $"{checkpoint.EffectiveOutChannels}", $"{run.EffectiveOutChannels}"),
            ("image_size", $"{checkpoint.ImageSize}", $"{run.ImageSize}"),
            ("base_channels", $"{checkpoint.BaseChannels}", $"{run.BaseChannels}"),
            ("channel_mult", string.Join(",", checkpoint.ChannelMult), string.Join(",", run.ChannelMult)),
            ("num_res_blocks", $"{checkpoint.NumResBlocks}", $"{run.NumResBlocks}"),
            ("attention_resolutions", string.Join(",", checkpoint.AttentionResolutions), string.Join(",", run.AttentionResolutions)),
            ("norm_groups", $"{checkpoint.NormGroups}", $"{run.NormGroups}"),
            ("resample_with_conv", $"{checkpoint.ResampleWithConv}", $"{run.ResampleWithConv}"),
        }.Where(d => d.Checkpoint != d.Run).ToList();
        if (differences.Count > 0)
            throw DdpmException.ForSetting(Setting, $"{source}: the checkpoint's network differs from the run's: "
                + string.Join("; ", differences.Select(d => $"{d.Name} {d.Checkpoint} in the checkpoint, {d.Run} in the run")));
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;
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
        ArgumentNullException.ThrowIfNull(checkpoint);
        ArgumentNullException.ThrowIfNull(run);
        // Every setting of the network as config.json writes it, so that a setting added later is compared too; the
        // dropout alone may differ (it changes training, not the weights' meaning).
        static JsonObject Settings(UNetConfig c)
        {
            var copy = c.Clone();
            copy.Dropout = 0;
            copy.OutChannels = copy.EffectiveOutChannels;
            return JsonSerializer.SerializeToNode(copy, TrainConfig.Json)!.AsObject();
        }
        var (theirs, ours) = (Settings(checkpoint), Settings(run));
        var differences = theirs.Where(kv => !JsonNode.DeepEquals(kv.Value, ours[kv.Key]))
            .Select(kv => $"{kv.Key} {kv.Value?.ToJsonString()} in the checkpoint, {ours[kv.Key]?.ToJsonString()} in the run").ToList();
        if (differences.Count > 0)
            throw DdpmException.ForSetting(Setting, $"{source}: the checkpoint's network differs from the run's: " + string.Join("; ", differences));
    }
}

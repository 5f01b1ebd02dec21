using System.Text.Json;
using System.Text.Json.Nodes;
using Ddpm.IO;
using Ddpm.Models;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.Interop;

/// <summary>
/// A diffusers model folder: the layout <c>DDPMPipeline.save_pretrained</c> writes (<c>model_index.json</c>,
/// <c>unet/config.json</c>, <c>unet/diffusion_pytorch_model.safetensors</c> or <c>.bin</c>,
/// <c>scheduler/scheduler_config.json</c>), or the flat one of early hub repositories (the same files side by side).
/// </summary>
public static class DiffusersFolder
{
    public const string IndexFile = "model_index.json";
    public const string UNetFolder = "unet";
    public const string SchedulerFolder = "scheduler";
    public const string ConfigFile = "config.json";
    public const string SchedulerFile = "scheduler_config.json";
    public const string WeightsName = "diffusion_pytorch_model";

    /// <summary>Whether <paramref name="dir"/> looks like a diffusers folder (pipeline or bare UNet2DModel), from its file names and the config's class.</summary>
    public static bool Holds(string dir) =>
        File.Exists(Path.Combine(dir, IndexFile)) || File.Exists(Path.Combine(dir, UNetFolder, ConfigFile)) || IsUNetFolder(dir);

    private static bool IsUNetFolder(string dir)
    {
        var config = Path.Combine(dir, ConfigFile);
        if (!File.Exists(config)) return false;
        try
        {
            return JsonNode.Parse(File.ReadAllText(config))?["_class_name"]?.GetValue<string>() == "UNet2DModel";
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or IOException)
        {
            return false;
        }
    }

    /// <summary>Reads a diffusers folder; every setting the project cannot express is a one-line error naming its file and key.</summary>
    public static PretrainedModel Read(string dir)
    {
        dir = Path.GetFullPath(dir);
        var index = Path.Combine(dir, IndexFile);
        if (File.Exists(index)) CheckIndex(index);
        string unetDir = File.Exists(Path.Combine(dir, UNetFolder, ConfigFile)) ? Path.Combine(dir, UNetFolder) : dir;
        var configFile = Path.Combine(unetDir, ConfigFile);
        if (!File.Exists(configFile)) throw new DdpmException($"{dir}: no {UNetFolder}/{ConfigFile} (nor a flat {ConfigFile}): not a diffusers model folder");
        var model = DiffusersUNetConfig.FromJson(ReadObject(configFile), configFile);

        // The scheduler sits in scheduler/ beside unet/, or beside config.json in a flat folder.
        string[] candidates = [Path.Combine(dir, SchedulerFolder, SchedulerFile), Path.Combine(unetDir, SchedulerFile),
            Path.Combine(Path.GetDirectoryName(unetDir)!, SchedulerFolder, SchedulerFile)];
        var schedulerFile = candidates.FirstOrDefault(File.Exists)
            ?? throw new DdpmException($"{dir}: no {SchedulerFolder}/{SchedulerFile}: what the network's output means (its betas, T, prediction type) is unknown");
        var diffusion = DiffusersScheduler.FromJson(ReadObject(schedulerFile), schedulerFile);

        var weights = WeightsFile(unetDir);
        int levels = model.Levels;
        return new PretrainedModel(PretrainedFormat.Diffusers, dir, weights, model, diffusion, () => TensorFiles.Read(weights),
            key => [DiffusersNames.ToDiffusers(key, levels), DiffusersNames.ToOlderDiffusers(key, levels)]);
    }

    private static string WeightsFile(string unetDir)
    {
        foreach (var ext in new[] { ".safetensors", ".bin" })
        {
            var f = Path.Combine(unetDir, WeightsName + ext);
            if (File.Exists(f)) return f;
        }
        if (File.Exists(Path.Combine(unetDir, WeightsName + ".safetensors.index.json")) || File.Exists(Path.Combine(unetDir, WeightsName + ".bin.index.json")))
            throw new DdpmException($"{unetDir}: the weights are sharded into several files, which this reader does not join");
        throw new DdpmException($"{unetDir}: no {WeightsName}.safetensors or {WeightsName}.bin");
    }

    private static void CheckIndex(string file)
    {
        var index = ReadObject(file);
        if (index["unet"] is JsonArray unet && unet.Count == 2 && unet[1]?.GetValue<string>() is string cls && cls != "UNet2DModel")
            throw new DdpmException($"{file}: unet {cls}: expected UNet2DModel (the network of DDPMPipeline)");
        foreach (var (key, _) in index)
            if (!key.StartsWith('_') && key is not ("unet" or "scheduler"))
                throw new DdpmException($"{file}: {key}: a pipeline component besides unet and scheduler (not an unconditional pixel-space DDPM)");
    }

    private static JsonObject ReadObject(string file)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(file)) as JsonObject ?? throw new DdpmException($"{file}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new DdpmException($"{file}: invalid JSON: {AtomicFile.OneLine(e.Message)}", e);
        }
    }

    /// <summary>
    /// Writes <paramref name="network"/> (a U-Net of <paramref name="model"/>) and its diffusion as a DDPMPipeline folder
    /// that <c>DDPMPipeline.from_pretrained</c> loads. The folder is assembled beside <paramref name="dir"/> under a
    /// temporary name and renamed into place when complete, so a crash leaves either no folder or a whole one.
    /// <paramref name="dir"/> must not exist, or be empty.
    /// </summary>
    public static void Write(string dir, UNetConfig model, DiffusionSettings diffusion, nn.Module network)
    {
        ArgumentNullException.ThrowIfNull(network);
        var unetJson = DiffusersUNetConfig.ToJson(model);
        var schedulerJson = DiffusersScheduler.ToJson(diffusion);
        dir = Path.GetFullPath(dir);
        if (File.Exists(dir)) throw new DdpmException($"{dir}: is a file, not a folder for the diffusers model");
        if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any()) throw new DdpmException($"{dir}: exists and is not empty; choose a new folder");
        var parent = Path.GetDirectoryName(dir)!;
        Directory.CreateDirectory(parent);
        var tmp = Path.Combine(parent, $".tmp-{Path.GetFileName(dir)}-{Guid.NewGuid():N}");
        try
        {
            using var scope = NewDisposeScope();
            Directory.CreateDirectory(Path.Combine(tmp, UNetFolder));
            Directory.CreateDirectory(Path.Combine(tmp, SchedulerFolder));
            var tensors = new Dictionary<string, Tensor>();
            int levels = model.Levels;
            foreach (var (key, t) in network.state_dict())
            {
                var value = t.detach().cpu().to(ScalarType.Float32);
                if (DiffusersNames.IsAttentionProjection(key)) value = value.reshape(value.shape[0], value.shape[1]);
                tensors[DiffusersNames.ToDiffusers(key, levels)] = value.contiguous();
            }
            Safetensors.SaveStateDict(Path.Combine(tmp, UNetFolder, WeightsName + ".safetensors"), tensors);
            FaultInjection.At("diffusers: weights written");
            var options = new JsonSerializerOptions { WriteIndented = true };
            File.WriteAllText(Path.Combine(tmp, UNetFolder, ConfigFile), unetJson.ToJsonString(options));
            File.WriteAllText(Path.Combine(tmp, SchedulerFolder, SchedulerFile), schedulerJson.ToJsonString(options));
            var index = new JsonObject
            {
                ["_class_name"] = "DDPMPipeline",
                ["_diffusers_version"] = DiffusersUNetConfig.DiffusersVersion,
                ["scheduler"] = new JsonArray("diffusers", "DDPMScheduler"),
                ["unet"] = new JsonArray("diffusers", "UNet2DModel"),
            };
            File.WriteAllText(Path.Combine(tmp, IndexFile), index.ToJsonString(options));
            foreach (var f in Directory.GetFiles(tmp, "*", SearchOption.AllDirectories)) AtomicFile.FlushToDisk(f);
            FaultInjection.At("diffusers: temporary folder complete");
            if (Directory.Exists(dir)) Directory.Delete(dir);
            Directory.Move(tmp, dir);
        }
        catch (Exception e) when (!FaultInjection.IsCrash(e))
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
            throw;
        }
    }
}

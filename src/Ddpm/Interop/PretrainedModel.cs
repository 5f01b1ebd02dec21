using Ddpm.Configuration;
using Ddpm.Diffusion;
using Ddpm.Models;
using Ddpm.Runs;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Interop;

/// <summary>Where a pretrained model comes from.</summary>
public enum PretrainedFormat
{
    /// <summary>A run folder, checkpoint folder or weights file written by this project.</summary>
    Run,
    /// <summary>A diffusers DDPMPipeline folder (<c>model_index.json</c>, <c>unet/</c>, <c>scheduler/</c>) or a UNet2DModel folder.</summary>
    Diffusers,
    /// <summary>A state dict of the original network under the names of its PyTorch port (pesser/pytorch_diffusion).</summary>
    Original,
}

/// <summary>
/// A trained U-Net from any of the formats this project reads (<see cref="PretrainedFormat"/>): its layout, what its
/// outputs mean, and its tensors under the file's own names until <see cref="CreateNetwork"/> maps them onto the
/// project's U-Net, checking every name and shape.
/// </summary>
public sealed class PretrainedModel : IDisposable
{
    public PretrainedFormat Format { get; }
    /// <summary>The folder or file read (for a run: the checkpoint folder).</summary>
    public string Source { get; }
    /// <summary>The file the tensors came from.</summary>
    public string WeightsFile { get; }
    public UNetConfig Model { get; }
    public DiffusionSettings Diffusion { get; }
    /// <summary>The run's whole configuration (format Run), or null.</summary>
    public TrainConfig? RunConfig { get; }
    /// <summary>Optimizer steps the run had done (format Run); 0 otherwise, as other formats do not record it.</summary>
    public long Step { get; }

    // The tensors are read when first needed (CreateNetwork, LoadInto), so reading a model's settings costs no weights.
    private Dictionary<string, Tensor>? _tensors;
    private readonly Func<Dictionary<string, Tensor>> _read;
    private readonly Func<string, IEnumerable<string>> _namesInFile;

    internal PretrainedModel(PretrainedFormat format, string source, string weightsFile, UNetConfig model, DiffusionSettings diffusion,
        Func<Dictionary<string, Tensor>> read, Func<string, IEnumerable<string>> namesInFile, TrainConfig? runConfig = null, long step = 0)
    {
        Format = format;
        Source = source;
        WeightsFile = weightsFile;
        Model = model;
        Diffusion = diffusion;
        _read = read;
        _namesInFile = namesInFile;
        RunConfig = runConfig;
        Step = step;
        int expected = GaussianDiffusion.ModelOutputChannels(diffusion.Variance, model.InChannels);
        if (model.EffectiveOutChannels != expected)
        {
            Dispose();
            throw new DdpmException($"{source}: the network outputs {model.EffectiveOutChannels} channels for {model.InChannels}-channel images, but variance "
                + $"{SettingNames.Variance.Name(diffusion.Variance)} needs {expected} ({(expected == model.InChannels ? "a learned variance needs twice as many" : "the variance is learned")})");
        }
    }

    /// <summary>
    /// Opens a run folder, checkpoint folder or weights file of this project (the EMA weights unless
    /// <paramref name="useEma"/> is false or the path names model.safetensors), a diffusers folder, or an original
    /// checkpoint file (<c>.ckpt</c>, <c>.pth</c>, <c>.pt</c>, <c>.bin</c> or <c>.safetensors</c> outside a run).
    /// An original checkpoint's layout is read from its tensors' shapes unless <paramref name="originalModel"/> gives it.
    /// </summary>
    public static PretrainedModel Open(string path, bool useEma = true, UNetConfig? originalModel = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        return Detect(path) switch
        {
            PretrainedFormat.Diffusers => DiffusersFolder.Read(path),
            PretrainedFormat.Original => OriginalCheckpoint.Read(path, originalModel),
            _ => OpenRun(path, useEma),
        };
    }

    /// <summary>File extensions of original checkpoints (torch.save files, or safetensors outside a run).</summary>
    public static IReadOnlyList<string> OriginalExtensions { get; } = [".ckpt", ".pth", ".pt", ".bin", ".safetensors"];

    /// <summary>Whether <paramref name="path"/> is a model in one of the formats of other projects (a diffusers folder, an original checkpoint file).</summary>
    public static bool IsForeign(string path) => Detect(path) != PretrainedFormat.Run;

    /// <summary>Which format <paramref name="path"/> is in, from the files present (nothing is parsed).</summary>
    public static PretrainedFormat Detect(string path)
    {
        if (Directory.Exists(path))
            return DiffusersFolder.Holds(path) ? PretrainedFormat.Diffusers : PretrainedFormat.Run;
        if (File.Exists(path) && !File.Exists(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, CheckpointStore.StateFile))
            && OriginalExtensions.Contains(Path.GetExtension(path), StringComparer.OrdinalIgnoreCase))
            return PretrainedFormat.Original;
        return PretrainedFormat.Run;
    }

    private static PretrainedModel OpenRun(string path, bool useEma)
    {
        var dir = CheckpointStore.Resolve(path);
        var state = CheckpointStore.ReadState(dir);
        if (state.Config.Model is not UNetConfig unet) throw new DdpmException(RunModels.CustomModelMissing(dir));
        string weights = File.Exists(path) ? Path.GetFullPath(path)
            : Path.Combine(dir, useEma ? CheckpointStore.EmaFile : CheckpointStore.ModelFile);
        if (!File.Exists(weights)) throw new DdpmException($"weights file not found: {weights}");
        return new PretrainedModel(PretrainedFormat.Run, dir, weights, unet.Clone(), DiffusionSettings.Of(state.Config),
            () => TensorFiles.Read(weights), key => [key], state.Config.Clone(), state.Step);
    }

    /// <summary>
    /// A configuration for this model: the run's own for a run; otherwise today's defaults with this model's network,
    /// image size, channels and diffusion settings (the data and optimisation settings are left to the caller).
    /// </summary>
    public TrainConfig ToConfig()
    {
        if (RunConfig is not null) return RunConfig.Clone();
        var c = new TrainConfig { Model = Model.Clone(), ImageSize = Model.ImageSize, Channels = Model.InChannels, Dropout = null };
        Diffusion.ApplyTo(c);
        // A learned variance trains only through the bound: improved DDPM's hybrid loss, as its recipe sets.
        if (GaussianDiffusion.ModelOutputChannels(c.Variance, 1) == 2) c.Loss = LossType.Hybrid;
        return c;
    }

    /// <summary>
    /// The project's U-Net of <see cref="Model"/> with these weights (float32, CPU). Every tensor of the network must be
    /// found in the file with its shape, and every tensor of the file must be used; otherwise a one-line error names
    /// the first few that differ and nothing is returned.
    /// </summary>
    public UNet CreateNetwork()
    {
        var net = new UNet(Model);
        try
        {
            LoadInto(net);
            return net;
        }
        catch
        {
            net.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Copies these weights into <paramref name="net"/>, a network of <see cref="Model"/>'s layout: every tensor of the
    /// network must be found in the file with its shape and every tensor of the file must be used, else a one-line
    /// error names the first few that differ and nothing is changed.
    /// </summary>
    public void LoadInto(nn.Module net)
    {
        ArgumentNullException.ThrowIfNull(net);
        var tensors = _tensors ??= _read();
        var used = new HashSet<string>();
        var problems = new List<string>();
        var pairs = new List<(Tensor Target, Tensor Source)>();
        foreach (var (key, target) in net.state_dict())
        {
            string? name = _namesInFile(key).FirstOrDefault(tensors.ContainsKey);
            if (name is null) { problems.Add($"{_namesInFile(key).First()} {Shape(target.shape)} missing"); continue; }
            used.Add(name);
            var source = tensors[name];
            // A linear layer's (C, C) weight is a 1x1 convolution's (C, C, 1, 1).
            bool linearForConv = source.dim() == 2 && target.dim() == 4 && target.shape[2] == 1 && target.shape[3] == 1
                && DiffusersNames.IsAttentionProjection(key);
            var shape = linearForConv ? new[] { source.shape[0], source.shape[1], 1L, 1L } : source.shape;
            if (!shape.SequenceEqual(target.shape)) { problems.Add($"{name} has shape {Shape(source.shape)}, the network needs {Shape(target.shape)}"); continue; }
            if (!source.is_floating_point()) { problems.Add($"{name} is {source.dtype}, not floating point"); continue; }
            pairs.Add((target, linearForConv ? source.reshape(shape) : source));
        }
        foreach (var name in tensors.Keys.Where(k => !used.Contains(k)))
            problems.Add($"{name} {Shape(tensors[name].shape)} unexpected");
        if (problems.Count > 0)
            throw new DdpmException($"{WeightsFile}: the weights do not fit the network read from {Source}, {problems.Count} tensor(s) differ: "
                + string.Join("; ", problems.Take(3)) + (problems.Count > 3 ? $" (and {problems.Count - 3} more)" : ""));
        using var _ = no_grad();
        foreach (var (target, source) in pairs) target.copy_(source);
    }

    private static string Shape(long[] shape) => "[" + string.Join(", ", shape) + "]";

    public void Dispose()
    {
        if (_tensors is null) return;
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors = null;
    }
}

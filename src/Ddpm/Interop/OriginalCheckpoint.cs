using System.Text.RegularExpressions;
using Ddpm.Models;
using static TorchSharp.torch;

namespace Ddpm.Interop;

/// <summary>
/// A checkpoint of the original DDPM network as its PyTorch port publishes them (pesser/pytorch_diffusion: a
/// <c>torch.save</c> state dict under the names this project's U-Net uses, e.g. <c>ema_diffusion_cifar10_model/model-790000.ckpt</c>).
/// The file holds no hyper-parameters: they are read from the tensors' shapes, and the rest from what every original
/// model shares (attention at 16x16, GroupNorm with 32 groups, the paper's diffusion settings).
/// </summary>
public static partial class OriginalCheckpoint
{
    /// <summary>The original placed attention at the 16x16 feature maps in every published model.</summary>
    public const int AttentionResolution = 16;

    /// <summary>GroupNorm's group count in the original code.</summary>
    public const int NormGroups = 32;

    /// <summary>Reads <paramref name="file"/>; its layout is <paramref name="model"/> when given, else read from the shapes (<see cref="Infer"/>).</summary>
    public static PretrainedModel Read(string file, UNetConfig? model = null)
    {
        file = Path.GetFullPath(file);
        var tensors = TensorFiles.Read(file);
        try
        {
            model = model?.Clone() ?? Infer(tensors.ToDictionary(kv => kv.Key, kv => kv.Value.shape), file);
            // The layout was read from these very tensors: they are handed over, not read again.
            return new PretrainedModel(PretrainedFormat.Original, file, file, model, DiffusionSettings.Ho2020, () => tensors, key => [key]);
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The U-Net layout that a state dict of the port's names has: ch and the input and output channels from
    /// <c>conv_in</c> and <c>conv_out</c>, the levels, blocks per level and channel multipliers from the <c>down.*</c>
    /// names and shapes, attention from <c>down.{i}.attn</c>, the image size from the attention's level (16 x 2^level),
    /// and dropout as the paper's (0.1 at 32x32, 0 at 256x256; it plays no part in sampling).
    /// </summary>
    public static UNetConfig Infer(IReadOnlyDictionary<string, long[]> shapes, string where)
    {
        long[] Shape(string key) => shapes.TryGetValue(key, out var s) ? s
            : throw new DdpmException($"{where}: no {key}: not a state dict of the original DDPM network (the names of its PyTorch port)");
        var convIn = Shape("conv_in.weight");
        var convOut = Shape("conv_out.weight");
        int ch = (int)convIn[0];
        var levelBlocks = new SortedDictionary<int, int>();
        var attnLevels = new SortedSet<int>();
        foreach (var key in shapes.Keys)
        {
            var m = DownName().Match(key);
            if (!m.Success) continue;
            int level = int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            int index = int.Parse(m.Groups[3].Value, System.Globalization.CultureInfo.InvariantCulture);
            if (m.Groups[2].Value == "attn") attnLevels.Add(level);
            else levelBlocks[level] = Math.Max(levelBlocks.GetValueOrDefault(level), index + 1);
        }
        if (levelBlocks.Count == 0) throw new DdpmException($"{where}: no down.0.block.0 tensors: not a state dict of the original DDPM network");
        int levels = levelBlocks.Keys.Max() + 1;
        int blocks = levelBlocks.GetValueOrDefault(0);
        var mult = new int[levels];
        for (int i = 0; i < levels; i++)
        {
            if (levelBlocks.GetValueOrDefault(i) != blocks)
                throw new DdpmException($"{where}: level {i} has {levelBlocks.GetValueOrDefault(i)} residual blocks on the way down, level 0 has {blocks}: not the original layout");
            long c = Shape($"down.{i}.block.0.conv1.weight")[0];
            if (c % ch != 0) throw new DdpmException($"{where}: level {i} has {c} channels, not a multiple of conv_in's {ch}");
            mult[i] = (int)(c / ch);
        }
        if (attnLevels.Count == 0)
            throw new DdpmException($"{where}: the network has no attention, so its image size cannot be told (the original's attention sits at 16x16): give the model's configuration instead");
        int first = attnLevels.Min;
        int size = AttentionResolution << first;
        if (attnLevels.Count > 1)
            throw new DdpmException($"{where}: attention at levels {string.Join(", ", attnLevels)}: the original's published models have it at one level (16x16)");
        bool withConv = levels == 1 || shapes.ContainsKey("down.0.downsample.conv.weight");
        var config = new UNetConfig
        {
            InChannels = (int)convIn[1],
            OutChannels = convOut[0] == convIn[1] ? 0 : (int)convOut[0],
            ImageSize = size,
            BaseChannels = ch,
            ChannelMult = mult,
            NumResBlocks = blocks,
            AttentionResolutions = [AttentionResolution],
            Dropout = size <= 32 ? 0.1 : 0.0,
            NormGroups = NormGroups,
            ResampleWithConv = withConv,
        };
        try
        {
            config.Validate();
        }
        catch (DdpmException e)
        {
            throw new DdpmException($"{where}: {e.Message}", e);
        }
        return config;
    }

    [GeneratedRegex(@"^down\.(\d+)\.(block|attn)\.(\d+)\.")]
    private static partial Regex DownName();
}

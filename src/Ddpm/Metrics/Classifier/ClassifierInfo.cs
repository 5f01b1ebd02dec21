using System.Text.Json;
using System.Text.Json.Serialization;

namespace Ddpm.Metrics.Classifier;

/// <summary>
/// What a classifier's weights file needs beside its tensors: the network's shape, the data it learned, its held-out
/// accuracy and how it was trained. Stored as JSON next to the weights (<c>NAME.json</c> beside <c>NAME.safetensors</c>).
/// </summary>
public sealed class ClassifierInfo
{
    public const string FormatName = "ddpm-dotnet-classifier/1";

    public string Format { get; set; } = FormatName;

    /// <summary>Short name of the data set (e.g. "mnist"); it names the extractor ("classifier/mnist") and its scores.</summary>
    public string Dataset { get; set; } = "";

    /// <summary>One name per class, in label order.</summary>
    public string[] ClassNames { get; set; } = Array.Empty<string>();

    /// <summary>Side length of the images the network takes (grey); other sizes are resized to it.</summary>
    public int ImageSize { get; set; } = ClassifierNet.ImageSize;

    public ClassifierArchitecture Architecture { get; set; } = new();

    /// <summary>Where the training images came from, and how many were used.</summary>
    public string TrainData { get; set; } = "";
    public int TrainImages { get; set; }

    /// <summary>The held-out set (e.g. "last 1000 of data/mnist-10k"), its size, and the accuracy measured on it.</summary>
    public string HeldOutData { get; set; } = "";
    public int HeldOutImages { get; set; }
    public double HeldOutAccuracy { get; set; }

    /// <summary>The training settings.</summary>
    public ClassifierTrainOptions Training { get; set; } = new();

    /// <summary>The command that trained these weights.</summary>
    public string Command { get; set; } = "";

    /// <summary>Intra-op threads during training (bitwise reproduction needs the same count).</summary>
    public int Threads { get; set; }

    public double TrainSeconds { get; set; }

    /// <summary>The TorchSharp version that trained the weights.</summary>
    public string TorchSharpVersion { get; set; } = "";

    /// <summary>SHA-256 of the weights file (lower-case hex); loading checks that the two files belong together.</summary>
    public string WeightsSha256 { get; set; } = "";

    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        // Readable quotes and slashes in the stored command line (the file is never embedded in HTML).
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json) + "\n";

    /// <summary>Parses and checks metadata; <paramref name="where"/> names the source in error messages.</summary>
    public static ClassifierInfo FromJson(string json, string where)
    {
        ClassifierInfo? info;
        try
        {
            info = JsonSerializer.Deserialize<ClassifierInfo>(json, Json);
        }
        catch (JsonException e)
        {
            throw new DdpmException($"{where}: not valid classifier metadata ({e.Message.ReplaceLineEndings(" ")})", e);
        }
        if (info is null) throw new DdpmException($"{where}: empty classifier metadata");
        if (info.Format != FormatName)
            throw new DdpmException($"{where}: unknown classifier format '{info.Format}' (expected {FormatName})");
        if (info.Architecture is null) throw new DdpmException($"{where}: classifier metadata has no architecture");
        try { info.Architecture.Validate(); }
        catch (DdpmException e) { throw new DdpmException($"{where}: {e.Message}", e); }
        if (info.ClassNames is null || info.ClassNames.Length != info.Architecture.Classes)
            throw new DdpmException($"{where}: {info.ClassNames?.Length ?? 0} class names for {info.Architecture.Classes} classes");
        if (info.ImageSize != ClassifierNet.ImageSize)
            throw new DdpmException($"{where}: image size {info.ImageSize}; this version's classifier takes {ClassifierNet.ImageSize}x{ClassifierNet.ImageSize}");
        if (string.IsNullOrWhiteSpace(info.Dataset)) throw new DdpmException($"{where}: classifier metadata names no dataset");
        return info;
    }
}

using Ddpm.Imaging;
using TorchSharp;
using static Ddpm.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Ddpm.Metrics.Classifier;

/// <summary>
/// The project's offline feature extractor: the penultimate layer (fc1 after its ReLU) of a small CNN classifier trained
/// on MNIST-style data, and its class logits. The Frechet distance over these features is named
/// <see cref="DistanceName"/>, e.g. "FD_classifier(mnist)": it is NOT FID (no Inception network is involved) and its values
/// are comparable only between runs that use the very same weights (<see cref="ClassifierInfo.WeightsSha256"/>).
/// </summary>
public sealed class ClassifierFeatureExtractor : IFeatureExtractor
{
    private readonly ClassifierNet _net;

    public ClassifierInfo Info { get; }

    /// <summary>Where the weights came from (a built-in name or a file path).</summary>
    public string Source { get; }

    /// <summary>"classifier/DATASET".</summary>
    public string Name => NameFor(Info);

    /// <summary>The <see cref="Name"/> of the extractor made from a classifier with this metadata, known without loading it.</summary>
    public static string NameFor(ClassifierInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        return $"classifier/{info.Dataset}";
    }

    /// <summary>The name of the Frechet distance over this extractor's features: "FD_classifier(DATASET)".</summary>
    public string DistanceName => $"FD_classifier({Info.Dataset})";

    /// <summary>The name of the Inception-Score analogue over this classifier's predictions: "IS_classifier(DATASET)".</summary>
    public string ScoreName => $"IS_classifier({Info.Dataset})";

    public int FeatureDims => _net.Architecture.FeatureDims;
    public int Classes => _net.Architecture.Classes;
    public Device Device { get; }

    /// <summary>Wraps a network (taking ownership of it) and puts it in eval mode on <paramref name="device"/>.</summary>
    public ClassifierFeatureExtractor(ClassifierNet net, ClassifierInfo info, string source, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(net);
        ArgumentNullException.ThrowIfNull(info);
        _net = net;
        Info = info;
        Source = source ?? "";
        Device = device ?? CPU;
        _net.to(Device);
        _net.eval();
    }

    /// <summary>Loads a built-in classifier ("mnist", "fashion-mnist") or a weights file (see <see cref="ClassifierStore.Load"/>).</summary>
    public static ClassifierFeatureExtractor Load(string nameOrPath, Device? device = null)
    {
        var loaded = ClassifierStore.Load(nameOrPath, device);
        return new ClassifierFeatureExtractor(loaded.Net, loaded.Info, loaded.Source, device);
    }

    /// <summary>
    /// Features and logits of images (N, C, H, W) in [-1, 1], C = 1 or 3, any size: quantised to 8 bits first, then
    /// <see cref="Preprocess"/>ed. Returns float32 CPU tensors (N, FeatureDims) and (N, Classes) into the caller's scope.
    /// </summary>
    public FeatureBatch Extract(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = Preprocess(images).to(Device);
        var features = _net.Features(x);
        var logits = _net.Head(features);
        var f = features.to(ScalarType.Float32, CPU).MoveToOuterDisposeScope();
        var l = logits.to(ScalarType.Float32, CPU).MoveToOuterDisposeScope();
        return new FeatureBatch(f, l);
    }

    /// <summary>
    /// The classifier's preprocessing: round to the 256 levels a PNG stores (<see cref="ImageIO.Quantize(Tensor)"/>) and map
    /// back to [-1, 1]; RGB to grey by the ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B, as the data loader does); any
    /// other size than 28x28 resized to 28x28 bilinearly (align_corners false, no antialiasing; a non-square image is
    /// stretched). Returns a new float32 CPU tensor (N, 1, 28, 28).
    /// </summary>
    public static Tensor Preprocess(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4 || (images.shape[1] != 1 && images.shape[1] != 3))
            throw new DdpmException($"classifier: images must be (N, 1 or 3, H, W); got shape [{string.Join(", ", images.shape)}]");
        using var scope = NewDisposeScope();
        // Scalars passed to TorchSharp are explicit and held for the whole call; see Ddpm.Runtime.HeldScalars.
        using var half255 = 127.5.ToScalar();
        using var one = 1.0.ToScalar();
        var x = ImageIO.Quantize(images).to(ScalarType.Float32).div(half255).sub(one);
        if (x.shape[1] == 3)
        {
            var luma = tensor(new float[] { 0.299f, 0.587f, 0.114f }).view(1, 3, 1, 1);
            x = x.add(one, Int1).mul(luma).sum(1, keepdim: true).sub(one);   // add(one, Int1): x.add(1.0) with its alpha held
        }
        const int s = ClassifierNet.ImageSize;
        if (x.shape[2] != s || x.shape[3] != s)
            x = nn.functional.interpolate(x, new long[] { s, s }, mode: InterpolationMode.Bilinear, align_corners: false);
        return x.contiguous().MoveToOuterDisposeScope();
    }

    public void Dispose() => _net.Dispose();
}

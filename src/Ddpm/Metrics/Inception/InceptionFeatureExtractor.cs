using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Metrics.Inception;

/// <summary>
/// The FID Inception network as an <see cref="IFeatureExtractor"/>, computing what pytorch-fid computes: images are
/// rounded to 8 bits, preprocessed by <see cref="FidPreprocess"/> and run through <see cref="FidInceptionV3"/>; the
/// features are the tap of the chosen size (64, 192, 768 or the standard 2048, "pool3"), averaged over space.
/// <see cref="FeatureBatch.Logits"/> are the 1008 class logits WITHOUT fc's bias (pool3 times fc.weight transposed),
/// which is what torch-fidelity feeds the Inception Score ("logits_unbiased"). An extractor made without logits has
/// <see cref="Classes"/> 0 and runs the network only as far as its tap (about a ninth of the work for the 64 features).
/// </summary>
public sealed class InceptionFeatureExtractor : IFeatureExtractor
{
    /// <summary>The feature sizes pytorch-fid offers (--dims).</summary>
    public static readonly IReadOnlyList<int> SupportedDims = new[] { 64, 192, 768, 2048 };

    /// <summary>pytorch-fid's default: the 2048 pool3 features.</summary>
    public const int DefaultDims = 2048;

    private readonly FidInceptionV3 _net;
    private readonly InceptionTaps _tap;
    private readonly bool _ownsNetwork;
    private readonly bool _logits;

    /// <summary>
    /// Wraps a network, moved to <paramref name="device"/> (default CPU); disposing the extractor disposes the network
    /// unless <paramref name="ownsNetwork"/> is false. Use <see cref="Load"/> for the real weights; a fresh
    /// <see cref="FidInceptionV3"/> has random ones. <paramref name="logits"/> false: features only (no Inception Score).
    /// </summary>
    public InceptionFeatureExtractor(FidInceptionV3 network, int dims = DefaultDims, Device? device = null, bool ownsNetwork = true,
        bool logits = true)
    {
        _ownsNetwork = ownsNetwork;
        _logits = logits;
        ArgumentNullException.ThrowIfNull(network);
        _tap = TapFor(dims);
        FeatureDims = dims;
        Device = device ?? CPU;
        _net = network;
        _net.to(Device);
        _net.eval();
    }

    /// <summary>
    /// The extractor with the weights found by <see cref="InceptionWeights.Resolve(string?)"/> from
    /// <paramref name="weightsPath"/> (null: environment variable, then cache folder); <paramref name="logits"/> as in the constructor.
    /// </summary>
    public static InceptionFeatureExtractor Load(string? weightsPath = null, int dims = DefaultDims, Device? device = null, bool logits = true)
    {
        TapFor(dims); // a wrong dims fails before the 91 MiB load
        var path = InceptionWeights.Resolve(weightsPath);
        return new InceptionFeatureExtractor(InceptionWeights.LoadNetwork(path), dims, device, logits: logits);
    }

    /// <summary>"inception-v3-fid/" and the tap: pool3 (2048), mixed6e (768), maxpool2 (192) or maxpool1 (64).</summary>
    public string Name => NameOf(_tap);

    /// <summary>The <see cref="Name"/> an extractor of <paramref name="dims"/> features has, known without loading it.</summary>
    public static string NameFor(int dims) => NameOf(TapFor(dims));

    private static string NameOf(InceptionTaps tap) => "inception-v3-fid/" + tap switch
    {
        InceptionTaps.MaxPool1 => "maxpool1",
        InceptionTaps.MaxPool2 => "maxpool2",
        InceptionTaps.Mixed6e => "mixed6e",
        _ => "pool3",
    };

    public int FeatureDims { get; }

    /// <summary>1008: the TF graph's classes (ImageNet's 1000 and 8 unused); 0 for an extractor made without logits.</summary>
    public int Classes => _logits ? FidInceptionV3.Classes : 0;

    public Device Device { get; }

    /// <summary>The network (e.g. to inspect its weights).</summary>
    public FidInceptionV3 Network => _net;

    /// <summary>
    /// Features (N, FeatureDims) and unbiased logits (N, 1008; null without logits) of float (N, C, H, W) images in
    /// [-1, 1], C = 1 or 3, any size (resized to 299x299). Both float32, on <see cref="Device"/>.
    /// </summary>
    public FeatureBatch Extract(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        return Run(FidPreprocess.FromImages(images, Device));
    }

    /// <summary>As <see cref="Extract"/>, from uint8 (N, C, H, W) pixels (e.g. decoded PNGs), which are used as they are.</summary>
    public FeatureBatch ExtractBytes(Tensor pixels)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        return Run(FidPreprocess.FromBytes(pixels, Device));
    }

    private FeatureBatch Run(Tensor input)
    {
        var o = _net.Run(input, _logits ? _tap | InceptionTaps.LogitsUnbiased : _tap);
        var features = _tap switch
        {
            InceptionTaps.MaxPool1 => o.MaxPool1,
            InceptionTaps.MaxPool2 => o.MaxPool2,
            InceptionTaps.Mixed6e => o.Mixed6e,
            _ => o.Pool3,
        };
        return new FeatureBatch(features!.MoveToOuterDisposeScope(), o.LogitsUnbiased?.MoveToOuterDisposeScope());
    }

    /// <summary>The tap for a feature size, or a <see cref="DdpmException"/> for a size pytorch-fid does not offer.</summary>
    public static InceptionTaps TapFor(int dims) => dims switch
    {
        64 => InceptionTaps.MaxPool1,
        192 => InceptionTaps.MaxPool2,
        768 => InceptionTaps.Mixed6e,
        2048 => InceptionTaps.Pool3,
        _ => throw DdpmException.ForSetting("dims", $"{dims}: expected 64, 192, 768 or 2048"),
    };

    public void Dispose()
    {
        if (_ownsNetwork) _net.Dispose();
    }
}

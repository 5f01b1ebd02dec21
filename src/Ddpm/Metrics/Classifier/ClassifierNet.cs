using Ddpm.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Metrics.Classifier;

/// <summary>
/// The offline classifier: a small CNN for grey 28x28 images in [-1, 1].
/// Three blocks conv3x3 (padding 1) -> batch norm -> ReLU -> max pool 2x2 take 28x28 to 14, 7 and 3 (floor);
/// the flattened map goes through <c>fc1</c> (ReLU, dropout: the penultimate features) and <c>fc2</c> (class logits).
/// State-dict keys: <c>conv1, bn1, conv2, bn2, conv3, bn3, fc1, fc2</c>, as PyTorch would name them.
/// Every conv runs through <see cref="SafeConv.Forward"/> (it is trained on the CPU).
/// </summary>
public sealed class ClassifierNet : nn.Module<Tensor, Tensor>
{
    /// <summary>The side length of the images the network takes.</summary>
    public const int ImageSize = 28;

#pragma warning disable IDE1006 // field names are state-dict keys
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly Conv2d conv3;
    private readonly BatchNorm2d bn3;
    private readonly Linear fc1;
    private readonly Dropout dropout;
    private readonly Linear fc2;
#pragma warning restore IDE1006

    public ClassifierArchitecture Architecture { get; }

    /// <summary>
    /// Builds the network with PyTorch's default initialisation, drawn from the global generator: seed it
    /// (<see cref="torch.manual_seed"/>) first for reproducible weights.
    /// </summary>
    public ClassifierNet(ClassifierArchitecture architecture) : base(nameof(ClassifierNet))
    {
        ArgumentNullException.ThrowIfNull(architecture);
        architecture.Validate();
        Architecture = architecture;
        var w = architecture.Widths;
        conv1 = nn.Conv2d(1, w[0], 3, padding: 1);
        bn1 = nn.BatchNorm2d(w[0]);
        conv2 = nn.Conv2d(w[0], w[1], 3, padding: 1);
        bn2 = nn.BatchNorm2d(w[1]);
        conv3 = nn.Conv2d(w[1], w[2], 3, padding: 1);
        bn3 = nn.BatchNorm2d(w[2]);
        fc1 = nn.Linear(w[2] * 3 * 3, architecture.FeatureDims);
        dropout = nn.Dropout(architecture.Dropout);
        fc2 = nn.Linear(architecture.FeatureDims, architecture.Classes);
        RegisterComponents();
    }

    /// <summary>The penultimate features (N, FeatureDims) of preprocessed images (N, 1, 28, 28): fc1 after its ReLU (and dropout in training mode).</summary>
    public Tensor Features(Tensor x)
    {
        if (x.dim() != 4 || x.shape[1] != 1 || x.shape[2] != ImageSize || x.shape[3] != ImageSize)
            throw new ArgumentException($"the classifier takes (N, 1, {ImageSize}, {ImageSize}) images; got shape [{string.Join(", ", x.shape)}]", nameof(x));
        using var scope = NewDisposeScope();
        var h = Block(conv1, bn1, x);
        h = Block(conv2, bn2, h);
        h = Block(conv3, bn3, h);
        h = dropout.call(nn.functional.relu(fc1.call(h.flatten(1))));
        return h.MoveToOuterDisposeScope();
    }

    /// <summary>Class logits (N, Classes) from penultimate features.</summary>
    public Tensor Head(Tensor features) => fc2.call(features);

    /// <summary>Class logits (N, Classes) of preprocessed images (N, 1, 28, 28).</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return Head(Features(x)).MoveToOuterDisposeScope();
    }

    private static Tensor Block(Conv2d conv, BatchNorm2d bn, Tensor x) =>
        nn.functional.max_pool2d(nn.functional.relu(bn.call(SafeConv.Forward(conv, x))), 2);
}

/// <summary>The shape of a <see cref="ClassifierNet"/>: what must be known to rebuild it before loading its weights.</summary>
public sealed class ClassifierArchitecture
{
    /// <summary>Output channels of conv1, conv2, conv3.</summary>
    public int[] Widths { get; set; } = { 16, 32, 64 };

    /// <summary>Width of fc1: the length of the penultimate feature vector.</summary>
    public int FeatureDims { get; set; } = 128;

    /// <summary>Number of classes (width of fc2).</summary>
    public int Classes { get; set; } = 10;

    /// <summary>Dropout after fc1 (training only; features are taken in eval mode).</summary>
    public double Dropout { get; set; } = 0.3;

    public void Validate()
    {
        if (Widths is not { Length: 3 } || Widths.Any(w => w < 1 || w > 4096))
            throw new DdpmException($"classifier architecture: widths must be three channel counts between 1 and 4096, got [{string.Join(", ", Widths ?? Array.Empty<int>())}]");
        if (FeatureDims is < 1 or > 65536)
            throw new DdpmException($"classifier architecture: feature width {FeatureDims} must be between 1 and 65536");
        if (Classes is < 2 or > 10000)
            throw new DdpmException($"classifier architecture: {Classes} classes; need between 2 and 10000");
        if (!(Dropout >= 0 && Dropout < 1))
            throw new DdpmException($"classifier architecture: dropout {Dropout} must be in [0, 1)");
    }
}

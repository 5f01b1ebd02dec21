using static TorchSharp.torch;

namespace Ddpm.Metrics;

/// <summary>
/// A network that maps images to feature vectors (for Frechet distances and KID) and to class logits (for the
/// Inception Score and its analogues). Implemented by the FID Inception network and by the project's own
/// offline classifier.
/// </summary>
public interface IFeatureExtractor : IDisposable
{
    /// <summary>Short name written beside every score, e.g. "inception-v3-fid/pool3" or "classifier/mnist".</summary>
    string Name { get; }

    /// <summary>Length of one feature vector.</summary>
    int FeatureDims { get; }

    /// <summary>Number of classes in <see cref="FeatureBatch.Logits"/>, or 0 when the extractor has no classifier head.</summary>
    int Classes { get; }

    /// <summary>The device the network runs on.</summary>
    Device Device { get; }

    /// <summary>
    /// Features of a batch of images given as float32 (N, C, H, W) in [-1, 1] (the project's image convention,
    /// C = 1 or 3, any H and W). The extractor first rounds the pixels to the 256 levels a PNG stores
    /// (<see cref="Imaging.ImageIO.Quantize(Tensor)"/>), then applies its own preprocessing. Runs without
    /// gradients; returns float32 (N, FeatureDims) features and (N, Classes) logits (null when Classes is 0) into
    /// the caller's dispose scope.
    /// </summary>
    FeatureBatch Extract(Tensor images);
}

/// <summary>One batch of features and, when the extractor has a classifier head, logits.</summary>
public sealed record FeatureBatch(Tensor Features, Tensor? Logits);

using System.Diagnostics;
using System.Globalization;
using Ddpm.Metrics.Inception;
using static TorchSharp.torch;

namespace Ddpm.Bench;

/// <summary>
/// Throughput of FID feature extraction: the FID Inception network (random weights: the speed does not depend on
/// them) on batches of 32x32 RGB images, preprocessing (rounding, resize to 299x299) included.
/// </summary>
public static class InceptionBenchmark
{
    /// <summary>
    /// Forward cost of one 299x299 image: 5.713 G multiply-adds (sum over the 94 convolutions of in x out x kernel
    /// area x output pixels, plus fc), counted as 2 FLOPs each.
    /// </summary>
    public const double GflopPerImage = 11.43;

    public static void Run(BenchOptions o, Action<string> line)
    {
        var inv = CultureInfo.InvariantCulture;
        using var fe = new InceptionFeatureExtractor(new FidInceptionV3());
        using var g = new Generator(1, CPU);
        using var images = rand(new long[] { o.InceptionBatch, 3, 32, 32 }, generator: g).mul(2).sub(1);
        void Once()
        {
            var b = fe.Extract(images);
            b.Features.Dispose();
            b.Logits?.Dispose();
        }
        var sw = Stopwatch.StartNew();
        Once(); // warm-up: the first batch also builds the convolution kernels
        double first = sw.Elapsed.TotalSeconds;
        sw.Restart();
        for (int i = 0; i < o.InceptionBatches; i++) Once();
        double secs = sw.Elapsed.TotalSeconds / o.InceptionBatches;
        double ips = o.InceptionBatch / secs;
        line(string.Format(inv, "inception features: {0:F1} images/s at batch {1} ({2:F2} s/batch over {3} batches, first batch {4:F2} s), {5:F0} GFLOP/s; 10,000 images take {6:F1} min",
            ips, o.InceptionBatch, secs, o.InceptionBatches, first, ips * GflopPerImage, 10000 / ips / 60));
    }
}

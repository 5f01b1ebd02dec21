using static TorchSharp.torch;

namespace Ddpm.Metrics.Inception;

/// <summary>The pooling steps of the Inception blocks.</summary>
internal static class InceptionPools
{
    /// <summary>
    /// 3x3 average pool, stride 1, padding 1, averaging only the pixels inside the image (count_include_pad=False):
    /// TF's average pool, which the FID network's weights were trained with (torchvision counts the padding).
    /// </summary>
    public static Tensor AverageExcludingPadding(Tensor x) =>
        nn.functional.avg_pool2d(x, 3, stride: 1, padding: 1, count_include_pad: false);

    /// <summary>3x3 max pool, stride 1, padding 1: the pool branch of the FID network's last block (Mixed_7c).</summary>
    public static Tensor MaxSame(Tensor x) => nn.functional.max_pool2d(x, 3, stride: 1, padding: 1);

    /// <summary>3x3 max pool, stride 2, no padding: the grid reductions (after the stem convs, Mixed_6a, Mixed_7a).</summary>
    public static Tensor MaxReduce(Tensor x) => nn.functional.max_pool2d(x, 3, stride: 2);
}

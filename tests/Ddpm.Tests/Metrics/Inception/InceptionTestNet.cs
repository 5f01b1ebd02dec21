using Ddpm.Metrics.Inception;
using static TorchSharp.torch;

namespace Ddpm.Tests.Metrics.Inception;

/// <summary>
/// Random weights that keep activations of order 1 through the whole depth (He-normal convs, batch-norm statistics
/// and affine near identity), so that numerical comparisons mean something; seeded.
/// </summary>
internal static class InceptionTestNet
{
    public static FidInceptionV3 Create(long seed = 11)
    {
        var net = new FidInceptionV3();
        Randomise(net, seed);
        return net;
    }

    public static void Randomise(FidInceptionV3 net, long seed)
    {
        manual_seed(seed);
        using var _ = no_grad();
        foreach (var (name, p) in net.named_parameters())
        {
            if (name.EndsWith("conv.weight", StringComparison.Ordinal))
                p.normal_(0, Math.Sqrt(2.0 / (p.shape[1] * p.shape[2] * p.shape[3])));
            else if (name.EndsWith("bn.weight", StringComparison.Ordinal)) p.uniform_(0.8, 1.2);
            else if (name.EndsWith("bn.bias", StringComparison.Ordinal)) p.uniform_(-0.1, 0.1);
            else if (name == "fc.weight") p.normal_(0, 1 / Math.Sqrt(2048));
            else if (name == "fc.bias") p.uniform_(-1, 1);
        }
        foreach (var (name, b) in net.named_buffers())
        {
            if (name.EndsWith("running_mean", StringComparison.Ordinal)) b.uniform_(-0.1, 0.1);
            else if (name.EndsWith("running_var", StringComparison.Ordinal)) b.uniform_(0.8, 1.2);
        }
    }

    /// <summary>Seeded 8-bit pixels (N, 3, size, size).</summary>
    public static Tensor Pixels(long n, long size, long seed = 5)
    {
        using var g = new Generator((ulong)seed, CPU);
        return randint(0, 256, new long[] { n, 3, size, size }, generator: g).to_type(ScalarType.Byte);
    }

    /// <summary>
    /// A seeded input in the network's range [-1, 1]: <see cref="Pixels"/> scaled as pytorch-fid scales them (k / 255,
    /// then 2x - 1), so that at 299x299 it is exactly what the preprocessing makes of those pixels.
    /// </summary>
    public static Tensor Input(long n, long size, long seed = 5)
    {
        using var p = Pixels(n, size, seed);
        return p.to_type(ScalarType.Float32).div(255.0).mul(2.0).sub(1.0);
    }
}

/// <summary>The test classes that share one <see cref="InceptionForwardFixture"/>.</summary>
[CollectionDefinition(Name)]
public sealed class InceptionCollection : ICollectionFixture<InceptionForwardFixture>
{
    public const string Name = "FID Inception network";
}

/// <summary>A random-weight net and one 299x299 forward pass, shared by the tests that need it (the net has 24M parameters).</summary>
public sealed class InceptionForwardFixture : IDisposable
{
    internal FidInceptionV3 Net { get; } = InceptionTestNet.Create();
    internal Tensor Input { get; } = InceptionTestNet.Input(1, 299);
    internal Tensor MaxPool1Map { get; }
    internal Tensor MaxPool2Map { get; }
    internal Tensor Mixed6eMap { get; }
    internal Tensor Mixed7cMap { get; }
    internal InceptionOutputs Outputs { get; }

    public InceptionForwardFixture()
    {
        using var _ = no_grad();
        MaxPool1Map = Net.ToMaxPool1(Input);
        MaxPool2Map = Net.ToMaxPool2(MaxPool1Map);
        Mixed6eMap = Net.ToMixed6e(MaxPool2Map);
        Mixed7cMap = Net.ToMixed7c(Mixed6eMap);
        var all = InceptionTaps.MaxPool1 | InceptionTaps.MaxPool2 | InceptionTaps.Mixed6e | InceptionTaps.Pool3
                  | InceptionTaps.Logits | InceptionTaps.LogitsUnbiased;
        Outputs = Net.Run(Input, all);
    }

    public void Dispose()
    {
        Net.Dispose();
        foreach (var t in new[] { Input, MaxPool1Map, MaxPool2Map, Mixed6eMap, Mixed7cMap })
            t.Dispose();
        foreach (var t in new[] { Outputs.MaxPool1, Outputs.MaxPool2, Outputs.Mixed6e, Outputs.Pool3, Outputs.Logits, Outputs.LogitsUnbiased })
            t?.Dispose();
    }
}

using Ddpm.Metrics.Inception;
using Ddpm.Models;
using Ddpm.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Tests.Metrics.Inception;

/// <summary>The FID Inception network's structure against the published architecture, and its forward pass.</summary>
[Collection(InceptionCollection.Name)]
public class InceptionArchitectureTests
{
    private readonly InceptionForwardFixture _f;

    public InceptionArchitectureTests(InceptionForwardFixture f) => _f = f;

    /// <summary>One conv of the published net: state-dict prefix, in and out channels, kernel height and width.</summary>
    private sealed record ConvSpec(string Name, long In, long Out, long Kh, long Kw);

    /// <summary>
    /// The convolutions of the TF Inception-v3 graph as torchvision / pytorch-fid name them, block by block
    /// (InceptionA: pool features; InceptionC: channels of the 7x7 branches), written out from the architecture table.
    /// </summary>
    private static List<ConvSpec> PublishedConvs()
    {
        var c = new List<ConvSpec>
        {
            new("Conv2d_1a_3x3", 3, 32, 3, 3), new("Conv2d_2a_3x3", 32, 32, 3, 3), new("Conv2d_2b_3x3", 32, 64, 3, 3),
            new("Conv2d_3b_1x1", 64, 80, 1, 1), new("Conv2d_4a_3x3", 80, 192, 3, 3),
        };
        foreach (var (m, cin, pool) in new[] { ("Mixed_5b", 192L, 32L), ("Mixed_5c", 256L, 64L), ("Mixed_5d", 288L, 64L) })
        {
            c.Add(new($"{m}.branch1x1", cin, 64, 1, 1));
            c.Add(new($"{m}.branch5x5_1", cin, 48, 1, 1));
            c.Add(new($"{m}.branch5x5_2", 48, 64, 5, 5));
            c.Add(new($"{m}.branch3x3dbl_1", cin, 64, 1, 1));
            c.Add(new($"{m}.branch3x3dbl_2", 64, 96, 3, 3));
            c.Add(new($"{m}.branch3x3dbl_3", 96, 96, 3, 3));
            c.Add(new($"{m}.branch_pool", cin, pool, 1, 1));
        }
        c.Add(new("Mixed_6a.branch3x3", 288, 384, 3, 3));
        c.Add(new("Mixed_6a.branch3x3dbl_1", 288, 64, 1, 1));
        c.Add(new("Mixed_6a.branch3x3dbl_2", 64, 96, 3, 3));
        c.Add(new("Mixed_6a.branch3x3dbl_3", 96, 96, 3, 3));
        foreach (var (m, c7) in new[] { ("Mixed_6b", 128L), ("Mixed_6c", 160L), ("Mixed_6d", 160L), ("Mixed_6e", 192L) })
        {
            c.Add(new($"{m}.branch1x1", 768, 192, 1, 1));
            c.Add(new($"{m}.branch7x7_1", 768, c7, 1, 1));
            c.Add(new($"{m}.branch7x7_2", c7, c7, 1, 7));
            c.Add(new($"{m}.branch7x7_3", c7, 192, 7, 1));
            c.Add(new($"{m}.branch7x7dbl_1", 768, c7, 1, 1));
            c.Add(new($"{m}.branch7x7dbl_2", c7, c7, 7, 1));
            c.Add(new($"{m}.branch7x7dbl_3", c7, c7, 1, 7));
            c.Add(new($"{m}.branch7x7dbl_4", c7, c7, 7, 1));
            c.Add(new($"{m}.branch7x7dbl_5", c7, 192, 1, 7));
            c.Add(new($"{m}.branch_pool", 768, 192, 1, 1));
        }
        c.Add(new("Mixed_7a.branch3x3_1", 768, 192, 1, 1));
        c.Add(new("Mixed_7a.branch3x3_2", 192, 320, 3, 3));
        c.Add(new("Mixed_7a.branch7x7x3_1", 768, 192, 1, 1));
        c.Add(new("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7));
        c.Add(new("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1));
        c.Add(new("Mixed_7a.branch7x7x3_4", 192, 192, 3, 3));
        foreach (var (m, cin) in new[] { ("Mixed_7b", 1280L), ("Mixed_7c", 2048L) })
        {
            c.Add(new($"{m}.branch1x1", cin, 320, 1, 1));
            c.Add(new($"{m}.branch3x3_1", cin, 384, 1, 1));
            c.Add(new($"{m}.branch3x3_2a", 384, 384, 1, 3));
            c.Add(new($"{m}.branch3x3_2b", 384, 384, 3, 1));
            c.Add(new($"{m}.branch3x3dbl_1", cin, 448, 1, 1));
            c.Add(new($"{m}.branch3x3dbl_2", 448, 384, 3, 3));
            c.Add(new($"{m}.branch3x3dbl_3a", 384, 384, 1, 3));
            c.Add(new($"{m}.branch3x3dbl_3b", 384, 384, 3, 1));
            c.Add(new($"{m}.branch_pool", cin, 192, 1, 1));
        }
        return c;
    }

    /// <summary>The keys and shapes of pt_inception-2015-12-05-6726825d.pth (without num_batches_tracked).</summary>
    private static SortedDictionary<string, string> PublishedStateDict()
    {
        var d = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var c in PublishedConvs())
        {
            d[$"{c.Name}.conv.weight"] = $"{c.Out},{c.In},{c.Kh},{c.Kw}";
            foreach (var s in new[] { "weight", "bias", "running_mean", "running_var" }) d[$"{c.Name}.bn.{s}"] = $"{c.Out}";
        }
        d["fc.weight"] = "1008,2048";
        d["fc.bias"] = "1008";
        return d;
    }

    [Fact]
    public void Has94ConvsAnd94BatchNormsWithTheRightSettings()
    {
        var modules = _f.Net.modules().ToList();
        var convs = modules.OfType<Conv2d>().ToList();
        var norms = modules.OfType<BatchNorm2d>().ToList();
        Assert.Equal(94, convs.Count);
        Assert.Equal(94, norms.Count);
        Assert.Equal(94, PublishedConvs().Count);
        Assert.All(convs, c => Assert.Null(c.bias));
        Assert.All(norms, n => Assert.Equal(0.001, n.eps));
        Assert.Single(modules.OfType<Linear>());
    }

    [Fact]
    public void StateDictKeysAndShapesAreThoseOfThePublishedWeights()
    {
        var expected = PublishedStateDict();
        Assert.Equal(472, expected.Count);
        var actual = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var counters = new List<string>();
        foreach (var (k, t) in _f.Net.state_dict())
        {
            if (k.EndsWith(".num_batches_tracked", StringComparison.Ordinal)) { counters.Add(k); continue; }
            actual[k] = string.Join(",", t.shape);
        }
        Assert.Equal(expected.Keys.ToList(), actual.Keys.ToList());
        foreach (var (k, shape) in expected) Assert.True(shape == actual[k], $"{k}: {actual[k]} != {shape}");
        // TorchSharp's BatchNorm2d registers the counter buffer, one per batch norm.
        Assert.Equal(94, counters.Count);
    }

    [Fact]
    public void NoConvHitsTheOneDnnForwardBugShapes()
    {
        // oneDNN's forward is wrong here for input channels that are odd multiples of 8 above 16.
        foreach (var c in PublishedConvs())
            Assert.False(c.In > 16 && c.In % 8 == 0 && c.In / 8 % 2 == 1, $"{c.Name} has {c.In} input channels");
        Assert.All(_f.Net.modules().OfType<Conv2d>(), c => Assert.False(SafeConv.Risky(c.in_channels) || SafeConv.Risky(c.out_channels)));
    }

    [Fact]
    public void TapsAndIntermediateMapsHaveThePublishedSizesAt299()
    {
        Assert.Equal(new long[] { 1, 64, 73, 73 }, _f.MaxPool1Map.shape);
        Assert.Equal(new long[] { 1, 192, 35, 35 }, _f.MaxPool2Map.shape);
        Assert.Equal(new long[] { 1, 768, 17, 17 }, _f.Mixed6eMap.shape);
        Assert.Equal(new long[] { 1, 2048, 8, 8 }, _f.Mixed7cMap.shape);
        var o = _f.Outputs;
        Assert.Equal(new long[] { 1, 64 }, o.MaxPool1!.shape);
        Assert.Equal(new long[] { 1, 192 }, o.MaxPool2!.shape);
        Assert.Equal(new long[] { 1, 768 }, o.Mixed6e!.shape);
        Assert.Equal(new long[] { 1, 2048 }, o.Pool3!.shape);
        Assert.Equal(new long[] { 1, 1008 }, o.Logits!.shape);
        Assert.Equal(new long[] { 1, 1008 }, o.LogitsUnbiased!.shape);
    }

    [Fact]
    public void TapsAreSpatialMeansOfTheMapsAndLogitsAreFcOfPool3()
    {
        var o = _f.Outputs;
        void Mean(Tensor map, Tensor tap) =>
            Assert.True(map.mean(new long[] { 2, 3 }).allclose(tap, rtol: 1e-5, atol: 1e-6));
        Mean(_f.MaxPool1Map, o.MaxPool1!);
        Mean(_f.MaxPool2Map, o.MaxPool2!);
        Mean(_f.Mixed6eMap, o.Mixed6e!);
        Mean(_f.Mixed7cMap, o.Pool3!);
        var w = _f.Net.state_dict()["fc.weight"].to_type(ScalarType.Float64);
        var b = _f.Net.state_dict()["fc.bias"].to_type(ScalarType.Float64);
        var p3 = o.Pool3!.to_type(ScalarType.Float64);
        var unbiased = p3.matmul(w.t());
        Assert.True(unbiased.allclose(o.LogitsUnbiased!.to_type(ScalarType.Float64), rtol: 1e-4, atol: 1e-5));
        Assert.True((unbiased + b).allclose(o.Logits!.to_type(ScalarType.Float64), rtol: 1e-4, atol: 1e-5));
        // The features are post-ReLU averages: non-negative, and not all zero with these weights.
        Assert.True(o.Pool3!.min().item<float>() >= 0);
        Assert.True(o.Pool3!.max().item<float>() > 0.01);
    }

    [Fact]
    public void Float32ForwardAgreesWithAFloat64Reference()
    {
        // float64 convolutions take libtorch's plain kernels, not oneDNN: a check that no layer of the net hits a
        // wrong oneDNN kernel on this machine. A 107x107 input (maps 53, 25, 11, 5, 2) keeps the slow float64 pass short.
        // The float64 copy is a net of this test's own (the same seeded weights), never the shared fixture cast and back.
        using var x = InceptionTestNet.Input(1, 107, seed: 3);
        using var _ = no_grad();
        var taps = InceptionTaps.MaxPool2 | InceptionTaps.Mixed6e | InceptionTaps.Pool3 | InceptionTaps.Logits;
        var single = _f.Net.Run(x, taps);
        using var net64 = InceptionTestNet.Create();
        net64.to(ScalarType.Float64);
        var reference = net64.Run(x.to_type(ScalarType.Float64), taps);
        void Close(Tensor expected, Tensor actual, string what)
        {
            double err = (actual.to_type(ScalarType.Float64) - expected).abs().max().item<double>();
            double scale = expected.abs().max().item<double>();
            Assert.True(scale > 1e-3, $"{what}: activations vanished ({scale})");
            Assert.True(err <= 1e-3 * scale, $"{what}: float32 differs from float64 by {err} (scale {scale})");
        }
        Close(reference.MaxPool2!, single.MaxPool2!, "maxpool2");
        Close(reference.Mixed6e!, single.Mixed6e!, "mixed6e");
        Close(reference.Pool3!, single.Pool3!, "pool3");
        Close(reference.Logits!, single.Logits!, "logits");
    }

    [Fact]
    public void RunStopsAtTheDeepestTapAskedFor()
    {
        using var x = InceptionTestNet.Input(2, 75); // the smallest input the net takes
        using var _ = no_grad();
        var o = _f.Net.Run(x, InceptionTaps.MaxPool2);
        Assert.Null(o.MaxPool1);
        Assert.Null(o.Pool3);
        Assert.Null(o.Logits);
        Assert.Equal(new long[] { 2, 192 }, o.MaxPool2!.shape);
        var map = _f.Net.ToMaxPool2(_f.Net.ToMaxPool1(x));
        Assert.True(map.mean(new long[] { 2, 3 }).allclose(o.MaxPool2, rtol: 1e-5, atol: 1e-6));
        Assert.All(new[] { o.MaxPool1, o.Mixed6e, o.Pool3, o.Logits, o.LogitsUnbiased }, Assert.Null);
    }

    [Fact]
    public void AChannelsLastInputGivesTheSameOutput()
    {
        // oneDNN's channels-last kernel for Conv2d_3b_1x1's shape (1x1, 64 to 80) is wrong on this machine; Run
        // must hand every layer plain NCHW tensors whatever the strides of its input.
        using var x = InceptionTestNet.Input(2, 75, seed: 4);
        using var channelsLast = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
        Assert.False(channelsLast.is_contiguous());
        using var _ = no_grad();
        var a = _f.Net.Run(x, InceptionTaps.MaxPool2).MaxPool2!;
        var b = _f.Net.Run(channelsLast, InceptionTaps.MaxPool2).MaxPool2!;
        Assert.True(a.allclose(b, rtol: 1e-5, atol: 1e-5));
    }

    [Fact]
    public void TrainingModeDoesNotChangeTheOutput()
    {
        // Batch norm must always use its running statistics (eval mode), whatever the module flag says. The mode is
        // switched on a net of this test's own (the fixture's seeded weights), never on the shared one.
        using var x = InceptionTestNet.Input(2, 75, seed: 9);
        using var _ = no_grad();
        using var net = InceptionTestNet.Create();
        var before = net.Run(x, InceptionTaps.MaxPool2).MaxPool2!;
        net.train();
        var during = net.Run(x, InceptionTaps.MaxPool2).MaxPool2!;
        Assert.True(before.allclose(during, rtol: 0, atol: 0));
        Assert.True(before.allclose(_f.Net.Run(x, InceptionTaps.MaxPool2).MaxPool2!, rtol: 0, atol: 0)); // same weights as the fixture's
        Assert.All(net.parameters(), p => Assert.False(p.requires_grad));
    }
}

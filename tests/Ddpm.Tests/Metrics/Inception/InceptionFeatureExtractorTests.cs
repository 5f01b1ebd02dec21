using Ddpm.Metrics;
using Ddpm.Metrics.Inception;
using static TorchSharp.torch;

namespace Ddpm.Tests.Metrics.Inception;

/// <summary>The extractor against the network run by hand on the same pixels (the shared 299x299 forward pass).</summary>
[Collection(InceptionCollection.Name)]
public class InceptionFeatureExtractorTests
{
    private readonly InceptionForwardFixture _f;

    public InceptionFeatureExtractorTests(InceptionForwardFixture f) => _f = f;

    [Fact]
    public void ExtractGivesPool3AndUnbiasedLogitsOfTheImages()
    {
        using IFeatureExtractor fe = new InceptionFeatureExtractor(_f.Net, ownsNetwork: false);
        Assert.Equal("inception-v3-fid/pool3", fe.Name);
        Assert.Equal(2048, fe.FeatureDims);
        Assert.Equal(1008, fe.Classes);
        Assert.Equal(TorchSharp.DeviceType.CPU, fe.Device.type);
        // The fixture's input is 8-bit pixels scaled to [-1, 1], so the extractor's rounding and resize change nothing.
        var batch = fe.Extract(_f.Input);
        using var features = batch.Features;
        using var logits = batch.Logits!;
        Assert.Equal(new long[] { 1, 2048 }, features.shape);
        Assert.Equal(new long[] { 1, 1008 }, logits.shape);
        Assert.Equal(ScalarType.Float32, features.dtype);
        Assert.False(features.requires_grad);
        Assert.True(features.allclose(_f.Outputs.Pool3!, rtol: 1e-5, atol: 1e-6));
        // Logits without fc's bias (torch-fidelity's IS input), not the network's own logits.
        Assert.True(logits.allclose(_f.Outputs.LogitsUnbiased!, rtol: 1e-5, atol: 1e-5));
        Assert.False(logits.allclose(_f.Outputs.Logits!, rtol: 1e-3, atol: 1e-3));
    }

    [Fact]
    public void Dims64TakesTheFirstMaxPoolFromUint8Pixels()
    {
        using var fe = new InceptionFeatureExtractor(_f.Net, dims: 64, ownsNetwork: false);
        Assert.Equal("inception-v3-fid/maxpool1", fe.Name);
        using var pixels = InceptionTestNet.Pixels(1, 299);
        var batch = fe.ExtractBytes(pixels);
        using var features = batch.Features;
        batch.Logits!.Dispose();
        Assert.Equal(new long[] { 1, 64 }, features.shape);
        Assert.True(features.allclose(_f.Outputs.MaxPool1!, rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void DimsOtherThanPytorchFidsAreAOneLineError()
    {
        foreach (var (dims, name) in new[] { (64, "maxpool1"), (192, "maxpool2"), (768, "mixed6e"), (2048, "pool3") })
        {
            using var fe = new InceptionFeatureExtractor(_f.Net, dims, ownsNetwork: false);
            Assert.Equal("inception-v3-fid/" + name, fe.Name);
            Assert.Equal(dims, fe.FeatureDims);
        }
        var e = Assert.Throws<DdpmException>(() => new InceptionFeatureExtractor(_f.Net, 1000, ownsNetwork: false));
        Assert.Equal("dims 1000: expected 64, 192, 768 or 2048", e.Message);
        // Checked before any weights are looked for.
        e = Assert.Throws<DdpmException>(() => InceptionFeatureExtractor.Load("/nonexistent/weights.pth", dims: 100));
        Assert.Equal("dims 100: expected 64, 192, 768 or 2048", e.Message);
        e = Assert.Throws<DdpmException>(() => InceptionFeatureExtractor.Load("/nonexistent/weights.pth"));
        Assert.Contains("/nonexistent/weights.pth", e.Message);
    }
}

using Ddpm.Metrics;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Metrics;

/// <summary>The deferred extractor loads its network once, on the first use other than its name, and never for the name.</summary>
public class DeferredFeatureExtractorTests
{
    [Fact]
    public void LoadsOnceOnFirstUseAndNotForTheName()
    {
        int loads = 0;
        PixelStatsExtractor? inner = null;
        using var deferred = new DeferredFeatureExtractor("test/pixel-stats", () => { loads++; return inner = new PixelStatsExtractor(); });
        Assert.Equal("test/pixel-stats", deferred.Name);
        Assert.False(deferred.IsLoaded);
        Assert.Equal(0, loads);

        Assert.Equal(3, deferred.FeatureDims);
        Assert.True(deferred.IsLoaded);
        Assert.Equal(3, deferred.Classes);
        Assert.Equal(DeviceType.CPU, deferred.Device.type);
        using var scope = NewDisposeScope();
        // Features of a constant image 0 (pixel 127.5 quantised to 128): mean 128/255, std 0, max 128/255.
        var batch = deferred.Extract(zeros(2, 1, 4, 4));
        Assert.Equal(new long[] { 2, 3 }, batch.Features.shape);
        Assert.Equal(128 / 255.0, batch.Features[0, 0].item<float>(), 6);
        Assert.Equal(1, loads);
        Assert.Equal(1, inner!.Calls);
    }

    [Fact]
    public void ANameThatDisagreesWithTheLoadedExtractorIsAnError()
    {
        using var deferred = new DeferredFeatureExtractor("inception-v3-fid/pool3", () => new PixelStatsExtractor());
        Assert.Throws<InvalidOperationException>(() => deferred.Load());
        Assert.False(deferred.IsLoaded);
    }

    [Fact]
    public void ADisposedExtractorDoesNotLoad()
    {
        int loads = 0;
        var deferred = new DeferredFeatureExtractor("test/pixel-stats", () => { loads++; return new PixelStatsExtractor(); });
        deferred.Dispose();
        Assert.Throws<ObjectDisposedException>(() => deferred.Load());
        Assert.Equal(0, loads);
    }
}

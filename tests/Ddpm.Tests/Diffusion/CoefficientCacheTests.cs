using Ddpm.Diffusion;
using static TorchSharp.torch;

namespace Ddpm.Tests.Diffusion;

public class CoefficientCacheTests
{
    /// <summary>
    /// The per-device coefficient tables are looked up without a lock: threads calling the diffusion at once, the first
    /// of them building the tables, all get x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps as computed in float64 by hand.
    /// </summary>
    [Fact]
    public void ConcurrentCallsShareOneTableAndAgreeWithTheClosedForm()
    {
        var s = NoiseSchedule.Linear(50);
        using var d = new GaussianDiffusion(s);
        var results = new float[8][];
        Parallel.For(0, 8, i =>
        {
            using var scope = NewDisposeScope();
            var x0 = full(new long[] { 2, 3 }, 0.5f);
            var noise = full(new long[] { 2, 3 }, -1.0f);
            var t = full(new long[] { 2 }, 10L + i, dtype: ScalarType.Int64);
            results[i] = TensorData.Floats(d.QSample(x0, t, noise));
        });
        for (int i = 0; i < 8; i++)
        {
            double ab = s.AlphasCumprod[10 + i];
            double expected = Math.Sqrt(ab) * 0.5 - Math.Sqrt(1 - ab);
            Assert.All(results[i], v => Assert.Equal(expected, v, 1e-6));
        }
        d.Dispose();
        using var x = zeros(1, 2);
        using var tt = zeros(1, dtype: ScalarType.Int64);
        Assert.Throws<ObjectDisposedException>(() => d.QSample(x, tt, x));
    }
}

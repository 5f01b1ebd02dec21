using Ddpm.Diffusion;
using Ddpm.Sampling;
using Ddpm.Tests.Diffusion;
using static TorchSharp.torch;

namespace Ddpm.Tests.Sampling;

public class InterpolationTests
{
    [Fact]
    public void SlerpFollowsTheGreatCircle()
    {
        using var a = tensor(new[] { 2f, 0f }).view(1, 2);
        using var b = tensor(new[] { 0f, 2f }).view(1, 2);
        using var start = Interpolation.Slerp(a, b, 0);
        using var end = Interpolation.Slerp(a, b, 1);
        using var mid = Interpolation.Slerp(a, b, 0.5);
        using var third = Interpolation.Slerp(a, b, 1.0 / 3);
        Assert.Equal(TensorData.Floats(a), TensorData.Floats(start));
        Assert.Equal(new[] { 0f, 2f }, TensorData.Floats(end).Select(v => MathF.Round(v, 6)).ToArray());
        // Orthogonal vectors of norm 2: the midpoint is at 45 degrees with norm 2 (the straight line's has norm sqrt 2).
        Assert.Equal(new[] { 2 * MathF.Sqrt(0.5f), 2 * MathF.Sqrt(0.5f) }, TensorData.Floats(mid), new FloatTolerance(1e-6f));
        Assert.Equal(new[] { 2 * MathF.Cos(MathF.PI / 6), 2 * MathF.Sin(MathF.PI / 6) }, TensorData.Floats(third), new FloatTolerance(1e-6f));
        // Parallel vectors fall back to the straight line.
        using var c = a * 3;
        using var lerp = Interpolation.Slerp(a, c, 0.5);
        Assert.Equal(new[] { 4f, 0f }, TensorData.Floats(lerp));
    }

    [Fact]
    public void EndFramesAreTheSeedsDdimSamples()
    {
        using var d = new GaussianDiffusion(NoiseSchedule.Linear(40));
        using var model = new FuncModel((x, _) => x * 0.4f);
        var shape = new long[] { 1, 1, 4, 4 };
        var ts = TimestepSelection.EvenlySpaced(40, 8);
        var ddim = new DdimSampler(new DdimOptions { Timesteps = ts });
        using var r = Interpolation.Interpolate(d, model, ddim, shape, 3, 9, 5);
        Assert.Equal(new long[] { 5, 1, 4, 4 }, r.Samples.shape);
        using var a = TestSampling.Ddim(d, model, shape, ts, 0.0, new SampleOptions { Seed = 3 });
        using var b = TestSampling.Ddim(d, model, shape, ts, 0.0, new SampleOptions { Seed = 9 });
        Assert.True(r.Samples[0].unsqueeze(0).allclose(a.Samples, rtol: 1e-5, atol: 1e-6));
        Assert.True(r.Samples[4].unsqueeze(0).allclose(b.Samples, rtol: 1e-5, atol: 1e-6));
        Assert.False(r.Samples[2].unsqueeze(0).allclose(a.Samples, rtol: 1e-2, atol: 1e-2));
        Assert.Throws<DdpmException>(() => Interpolation.Interpolate(d, model, ddim, shape, 3, 9, 1));
        Assert.Throws<DdpmException>(() => Interpolation.Interpolate(d, model, ddim, new long[] { 2, 1, 4, 4 }, 3, 9, 3));
    }
}

internal sealed class FloatTolerance : IEqualityComparer<float>
{
    private readonly float _tolerance;
    public FloatTolerance(float tolerance) => _tolerance = tolerance;
    public bool Equals(float x, float y) => Math.Abs(x - y) <= _tolerance;
    public int GetHashCode(float obj) => 0;
}

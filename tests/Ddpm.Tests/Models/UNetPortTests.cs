using Ddpm.Models;
using Ddpm.Runs;
using Ddpm.Training;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.Tests.Models;

/// <summary>
/// The U-Net against the PyTorch port of the original network (pesser/pytorch_diffusion <c>model.py</c>, the port that
/// loads the original TensorFlow checkpoints), built by that port's own code in PyTorch 1.13 at this project's
/// <c>mnist-small</c> layout with random weights in every tensor; see Fixtures/pytorch-port-mnist-small/README.md.
/// </summary>
public class UNetPortTests
{
    private static string Fixture(string name) =>
        Path.Combine(TestUtil.RepoRoot(), "tests", "Ddpm.Tests", "Models", "Fixtures", "pytorch-port-mnist-small", name);

    private static UNet LoadPortWeights()
    {
        var model = new UNet(Presets.Get("mnist-small"));
        CheckpointStore.LoadWeights(model, Fixture("model.safetensors")); // the project's strict loader
        model.eval();
        return model;
    }

    [Fact]
    public void PortStateDictLoadsStrictlyWithEveryKeyAndShape()
    {
        using var scope = NewDisposeScope();
        var file = Safetensors.LoadStateDict(Fixture("model.safetensors"));
        using var model = new UNet(Presets.Get("mnist-small"));
        var own = model.state_dict();
        Assert.Equal(file.Keys.Order(StringComparer.Ordinal), own.Keys.Order(StringComparer.Ordinal)); // none missing, none extra
        foreach (var (name, t) in file)
        {
            Assert.True(t.shape.SequenceEqual(own[name].shape), $"{name}: file [{string.Join(", ", t.shape)}], model [{string.Join(", ", own[name].shape)}]");
            Assert.Equal(ScalarType.Float32, t.dtype);
        }
        // 1,112,801 parameters: the count the port printed for this layout (fixture README).
        Assert.Equal(1_112_801L, file.Values.Sum(t => t.numel()));

        CheckpointStore.LoadWeights(model, Fixture("model.safetensors"));
        foreach (var (name, p) in model.named_parameters())
            Assert.True(p.equal(file[name]).all().item<bool>(), $"{name} differs from the file after loading");
    }

    [Fact]
    public void Float32ForwardReproducesThePortsOutput()
    {
        using var scope = NewDisposeScope();
        var reference = Safetensors.LoadStateDict(Fixture("reference.safetensors"));
        using var model = LoadPortWeights();
        Tensor y;
        using (no_grad()) y = model.call(reference["x"], reference["t"]);

        var out32 = reference["out"].to(ScalarType.Float64);
        var out64 = reference["out_float64"];
        // The port's own float32 output differs from its float64 output by its float32 rounding through this net (about
        // 7.7e-8 against outputs up to 0.069). Ours is rounded as much, independently, so the two float32 results may
        // differ by up to the sum: 2x that rounding. A wrong operation anywhere (sin/cos order, a missing swish,
        // GroupNorm's epsilon, the skip order) moves the output by orders of magnitude more.
        double rounding = (out32 - out64).abs().max().item<double>();
        Assert.InRange(rounding, 1e-8, 5e-7);                            // the fixture is what its README says
        Assert.InRange(out64.abs().max().item<double>(), 0.05, 0.1);
        double err = (y.to(ScalarType.Float64) - out32).abs().max().item<double>();
        Assert.True(err <= 2 * rounding, $"max |ours - port| = {err:E3}, tolerance {2 * rounding:E3}");
    }

    /// <summary>
    /// The same weights in a model of this test's own, cast to float64, against the port's float64 forward. In
    /// reference.safetensors that forward was fed the port's float32 time embedding (cast after it was computed), so it
    /// differs from a true float64 evaluation wherever t &gt; 0 (t sin/cos arguments rounded to float32: about 1e-8 in the
    /// output); reference_float64.safetensors holds the port's net run on an embedding computed in float64
    /// (make_float64_reference.py). At t = 0 both embeddings are exactly (0..., 1...), so there the original file must match too.
    /// </summary>
    [Fact]
    public void Float64ForwardReproducesThePortsFloat64Output()
    {
        using var scope = NewDisposeScope();
        var reference = Safetensors.LoadStateDict(Fixture("reference.safetensors"));
        var exact = Safetensors.LoadStateDict(Fixture("reference_float64.safetensors"));
        using var model = LoadPortWeights();
        model.to(ScalarType.Float64);
        Tensor y;
        using (no_grad()) y = model.call(reference["x"].to(ScalarType.Float64), reference["t"]);
        Assert.Equal(ScalarType.Float64, y.dtype);

        // float64 rounding through some 20 layers of sums of up to 864 terms: relative errors of order 1e-14; 1e-12 of
        // the output scale leaves room for a different summation order and none for any real difference.
        double scale = exact["out"].abs().max().item<double>();
        double err = (y - exact["out"]).abs().max().item<double>();
        Assert.True(err <= 1e-12 * scale, $"max |ours - port| = {err:E3} against outputs up to {scale:F4}");

        double errAtZero = (y[0] - reference["out_float64"][0]).abs().max().item<double>();  // t[0] = 0
        Assert.Equal(0L, reference["t"][0].item<long>());
        Assert.True(errAtZero <= 1e-12 * scale, $"t = 0: max |ours - port| = {errAtZero:E3}");
    }
}

using Ddpm.Interop;
using Ddpm.Models;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.Tests.Interop;

/// <summary>Original DDPM checkpoints under the names of the PyTorch port (pesser/pytorch_diffusion).</summary>
public class OriginalCheckpointTests
{
    private static string PortFixture(string name) =>
        Path.Combine(TestUtil.RepoRoot(), "tests", "Ddpm.Tests", "Models", "Fixtures", "pytorch-port-mnist-small", name);

    /// <summary>
    /// The port's own state dict (written by its code; the mnist-small layout with 8 groups, which its shapes cannot tell)
    /// with the layout given: the forward pass reproduces the port's output (to 2x the float32 rounding the fixture
    /// README states for this net, as <c>UNetPortTests</c>).
    /// </summary>
    [Fact]
    public void PortStateDictWithItsLayoutGivenReproducesThePortsOutput()
    {
        using var scope = NewDisposeScope();
        Assert.Equal(PretrainedFormat.Original, PretrainedModel.Detect(PortFixture("model.safetensors")));
        using var model = PretrainedModel.Open(PortFixture("model.safetensors"), originalModel: Presets.Get("mnist-small"));
        Assert.Equal(DiffusionSettings.Ho2020, model.Diffusion);
        using var net = model.CreateNetwork();
        net.eval();
        var reference = Safetensors.LoadStateDict(PortFixture("reference.safetensors"));
        Tensor y;
        using (no_grad()) y = net.call(reference["x"], reference["t"]);
        double rounding = (reference["out"].to(ScalarType.Float64) - reference["out_float64"]).abs().max().item<double>();
        double err = (y.to(ScalarType.Float64) - reference["out"].to(ScalarType.Float64)).abs().max().item<double>();
        Assert.True(err <= 2 * rounding, $"max |ours - port| = {err:E3}, tolerance {2 * rounding:E3}");
    }

    /// <summary>
    /// The published models' layouts are read from a torch.save file's shapes alone: the paper's CIFAR-10 network
    /// (ho-cifar10) and a narrow version of its 256x256 one (6 levels, attention at 16x16 so 256x256 images).
    /// </summary>
    [Theory]
    [InlineData(128, new[] { 1, 2, 2, 2 }, 32, 0.1)]
    [InlineData(32, new[] { 1, 1, 2, 2, 4, 4 }, 256, 0.0)]
    public void LayoutIsReadFromTheShapesOfATorchSaveFile(int ch, int[] mult, int size, double dropout)
    {
        using var scope = NewDisposeScope();
        var layout = new UNetConfig
        {
            InChannels = 3, ImageSize = size, BaseChannels = ch, ChannelMult = mult, NumResBlocks = 2,
            AttentionResolutions = [16], Dropout = dropout, NormGroups = 32,
        };
        manual_seed(1);
        using var net = new UNet(layout);
        var file = Path.Combine(TestUtil.TempDir(), "model-790000.ckpt");
        net.save_py(file); // torch.save's zip format, as the port's checkpoints
        Assert.Equal(PretrainedFormat.Original, PretrainedModel.Detect(file));
        using var model = PretrainedModel.Open(file);
        var m = model.Model;
        Assert.Equal((3, 0, size, ch, 2, 32, dropout, true), (m.InChannels, m.OutChannels, m.ImageSize, m.BaseChannels, m.NumResBlocks, m.NormGroups, m.Dropout, m.ResampleWithConv));
        Assert.Equal(mult, m.ChannelMult);
        Assert.Equal(new[] { 16 }, m.AttentionResolutions);
        using var back = model.CreateNetwork();
        var mine = net.state_dict();
        foreach (var (key, t) in back.state_dict()) Assert.True(t.equal(mine[key]).all().item<bool>(), key);
    }

    [Fact]
    public void AStateDictOfAnotherNetworkIsAOneLineError()
    {
        var file = Path.Combine(TestUtil.TempDir(), "other.pth");
        using (var lin = nn.Linear(3, 4)) lin.save_py(file);
        var e = Assert.Throws<DdpmException>(() => PretrainedModel.Open(file).Dispose());
        Assert.Contains("no conv_in.weight", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    /// <summary>Weights of another layout than the one given are refused naming the tensors, before anything is built.</summary>
    [Fact]
    public void AGivenLayoutThatDoesNotFitIsRefusedNamingTensors()
    {
        var wrong = Presets.Get("mnist-small");
        wrong.BaseChannels = 64;
        using var model = PretrainedModel.Open(PortFixture("model.safetensors"), originalModel: wrong);
        var e = Assert.Throws<DdpmException>(() => model.CreateNetwork().Dispose());
        Assert.Contains("do not fit", e.Message);
        // The time embedding's first dense layer is the network's first tensor: ch 32 in the file, 64 asked for.
        Assert.Contains("temb.dense.0.weight has shape [128, 32], the network needs [256, 64]", e.Message);
    }
}

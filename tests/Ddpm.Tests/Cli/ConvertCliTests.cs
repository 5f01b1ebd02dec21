using Ddpm.Data;
using Ddpm.Interop;
using Ddpm.IO;
using Ddpm.Runs;
using Ddpm.Tests.Interop;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.Tests.Cli;

/// <summary><c>ddpm convert</c> both ways, and the commands that read a diffusers folder or a converted run.</summary>
public class ConvertCliTests : OneThreadTest
{
    private static (int Code, string Out, string Err) Cli(params string[] args) => TestUtil.Cli(args);

    private static byte[] Sample(string checkpoint, string dir)
    {
        var png = Path.Combine(dir, $"s-{Guid.NewGuid():N}.png");
        var (code, output, err) = Cli("sample", "-c", checkpoint, "-n", "2", "--sampler", "ddim", "--sample-steps", "3",
            "-o", png, "--no-progress", "--device", "cpu", "--threads", "1");
        Assert.True(code == 0, err + output);
        return File.ReadAllBytes(png);
    }

    /// <summary>
    /// A diffusers folder converted to a run and that run converted back: the same tensors as diffusers wrote, bit for
    /// bit under the same names; the run samples the same images as the folder read directly.
    /// </summary>
    [Fact]
    public void DiffusersToRunAndBackKeepsEveryTensorAndTheSamples()
    {
        var dir = TestUtil.TempDir();
        var fixture = DiffusersFolderTests.Fixture("grey28");
        var run = Path.Combine(dir, "run");
        var (code, output, err) = Cli("convert", fixture, run);
        Assert.True(code == 0, err + output);
        Assert.Contains("read diffusers folder", output);
        Assert.Contains("408,641 parameters", output); // the count diffusers printed for this layout (shared fixture README)
        var state = CheckpointStore.ReadState(CheckpointStore.Resolve(run));
        Assert.Equal((0L, "", Ddpm.Diffusion.PredictionType.Epsilon), (state.Step, state.Config.Data, state.Config.Prediction));

        var back = Path.Combine(dir, "back");
        (code, output, err) = Cli("convert", run, back);
        Assert.True(code == 0, err + output);
        using (var scope = NewDisposeScope())
        {
            var theirs = Safetensors.LoadStateDict(Path.Combine(fixture, "unet", "diffusion_pytorch_model.safetensors"));
            var ours = Safetensors.LoadStateDict(Path.Combine(back, "unet", "diffusion_pytorch_model.safetensors"));
            Assert.Equal(theirs.Keys.Order(StringComparer.Ordinal), ours.Keys.Order(StringComparer.Ordinal));
            foreach (var (key, t) in theirs) Assert.True(t.equal(ours[key]).all().item<bool>(), key);
        }
        Assert.Equal(Sample(fixture, dir), Sample(run, dir));
        Assert.Equal(Sample(fixture, dir), Sample(back, dir));
    }

    /// <summary>
    /// --reference-output writes the converted network's output on the fixed input of diffusers' fixtures (the same x
    /// and t for T = 1000), so it must equal what diffusers' UNet2DModel computed for that folder.
    /// </summary>
    [Fact]
    public void ReferenceOutputIsTheNetworksOutputOnTheFixturesInput()
    {
        var dir = TestUtil.TempDir();
        var fixture = DiffusersFolderTests.Fixture("cifar10-layout");
        var file = Path.Combine(dir, "reference.safetensors");
        var (code, output, err) = Cli("convert", fixture, Path.Combine(dir, "run"), "--reference-output", file);
        Assert.True(code == 0, err + output);
        using var scope = NewDisposeScope();
        var ours = Safetensors.LoadStateDict(file);
        var theirs = Safetensors.LoadStateDict(Path.Combine(fixture, "reference.safetensors"));
        Assert.True(ours["x"].equal(theirs["x"]).all().item<bool>());
        Assert.True(ours["t"].equal(theirs["t"]).all().item<bool>());
        double scale = theirs["out"].abs().max().item<float>();
        double error = (ours["out"] - theirs["out"]).abs().max().item<float>();
        Assert.True(error <= 1e-5 * scale, $"{error:E3} against {scale:F4}");
    }

    /// <summary>A converted run resumes (fine-tunes) once training data is given, from step 0 with its fresh optimizer state.</summary>
    [Fact]
    public void AConvertedRunResumesWithDataGiven()
    {
        var dir = TestUtil.TempDir();
        var run = Path.Combine(dir, "run");
        Assert.Equal(0, Cli("convert", DiffusersFolderTests.Fixture("grey28"), run).Code);
        var idx = Path.Combine(dir, "grey28-idx3-ubyte.gz");
        using (var data = TestUtil.TinyData(count: 64, channels: 1, size: 28)) Idx.WriteImages(idx, data.Images, gzip: true); // the stored batch size, 64
        var (code, output, err) = Cli("train", "--resume", run, "--data", idx, "--steps", "1", "--no-progress", "--threads", "1", "--device", "cpu");
        Assert.True(code == 0, err + output);
        Assert.Equal(1L, CheckpointStore.ReadState(CheckpointStore.Resolve(run)).Step);
    }

    [Fact]
    public void BadInputIsAOneLineErrorAndWritesNothing()
    {
        var dir = TestUtil.TempDir();
        var (code, _, err) = Cli("convert", Path.Combine(dir, "missing"), Path.Combine(dir, "out"));
        Assert.NotEqual(0, code);
        Assert.Single(err.Trim().Split('\n'));
        Assert.False(Directory.Exists(Path.Combine(dir, "out")));

        (code, _, err) = Cli("convert", DiffusersFolderTests.Fixture("grey28"), Path.Combine(dir, "o"), "--no-ema");
        Assert.NotEqual(0, code);
        Assert.Contains("--no-ema applies to this project's runs only", err);

        // Into a folder that already holds a run: refused, the run untouched.
        var run = Path.Combine(dir, "run");
        Assert.Equal(0, Cli("convert", DiffusersFolderTests.Fixture("grey28"), run).Code);
        var before = File.ReadAllBytes(Path.Combine(CheckpointStore.Resolve(run), CheckpointStore.EmaFile));
        (code, _, err) = Cli("convert", DiffusersFolderTests.Fixture("cifar10-layout"), run);
        Assert.NotEqual(0, code);
        Assert.Contains("already holds a run", err);
        Assert.Equal(before, File.ReadAllBytes(Path.Combine(CheckpointStore.Resolve(run), CheckpointStore.EmaFile)));
    }

    /// <summary>An original checkpoint (a torch.save file) converts with its layout read from the shapes; --model gives another.</summary>
    [Fact]
    public void OriginalCheckpointConvertsWithItsLayoutReadOrGiven()
    {
        var dir = TestUtil.TempDir();
        var port = Path.Combine(TestUtil.RepoRoot(), "tests", "Ddpm.Tests", "Models", "Fixtures", "pytorch-port-mnist-small");
        var modelJson = Path.Combine(dir, "model.json");
        File.WriteAllText(modelJson, System.Text.Json.JsonSerializer.Serialize(Ddpm.Models.Presets.Get("mnist-small"), TrainConfig.Json));
        var run = Path.Combine(dir, "run");
        var (code, output, err) = Cli("convert", Path.Combine(port, "model.safetensors"), run, "--model", modelJson);
        Assert.True(code == 0, err + output);
        Assert.Contains("read original checkpoint", output);
        Assert.Contains("1,112,801 parameters", output);
        using var pretrained = PretrainedModel.Open(run);
        Assert.Equal(8, pretrained.Model.NormGroups);
        Assert.Equal(DiffusionSettings.Ho2020, pretrained.Diffusion);
    }
}

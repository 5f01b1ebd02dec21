using System.Text.Json.Nodes;
using Ddpm.Models;
using Ddpm.Runs;
using Ddpm.Training;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

/// <summary>
/// A checkpoint's files that do not fit: a state.json holding an invalid value names the file and the setting key
/// (not an option the user never gave), and weights of another network name the tensors that differ (not libtorch's
/// broadcast text) and which preset they look like, before anything is loaded.
/// </summary>
public class CheckpointFileErrorsTests
{
    [Fact]
    public void AnInvalidValueInStateJsonNamesTheFileAndTheSetting()
    {
        var dir = TestUtil.TempDir();
        var run = Path.Combine(dir, "run");
        using var data = TestUtil.TinyData();
        using (var t = Trainer.Start(TestUtil.TinyConfig(steps: 2), run, data))
        {
            t.TrainStep();
            t.SaveCheckpoint();
        }
        var ck = CheckpointStore.Resolve(run);
        var stateFile = Path.Combine(ck, CheckpointStore.StateFile);
        var state = JsonNode.Parse(File.ReadAllText(stateFile))!;
        state["config"]!["timesteps"] = 0;
        File.WriteAllText(stateFile, state.ToJsonString());

        var e = Assert.Throws<DdpmException>(() => CheckpointStore.ReadState(ck));
        Assert.StartsWith(stateFile + ": timesteps 0: must be", e.Message);
        Assert.Null(e.Setting); // a stored value: no front end may respell it as one of its options
        Assert.Equal(e.Message, Assert.Throws<DdpmException>(() => Trainer.Resume(run, data)).Message);

        var (code, output, err) = TestUtil.Cli("sample", "-c", run, "-n", "1", "-o", Path.Combine(dir, "s.png"), "--no-progress");
        Assert.True(code == 1, output + err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.Contains(stateFile + ": timesteps 0", err);
        Assert.DoesNotContain("--timesteps", err);
    }

    [Fact]
    public void WeightsThatDoNotFitNameTheTensorsAndChangeNothing()
    {
        using var scope = NewDisposeScope();
        var dir = TestUtil.TempDir();
        manual_seed(3);
        using var source = new UNet(TestUtil.TinyUNet());
        var dict = source.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
        var names = dict.Keys.ToList();
        string dropped = names[0], widened = names[^1];
        dict.Remove(dropped);
        dict[widened] = dict[widened].to_type(ScalarType.Float64);
        dict["extra.weight"] = zeros(2);
        var file = Path.Combine(dir, "odd.safetensors");
        Safetensors.SaveStateDict(file, dict);

        using var target = new UNet(TestUtil.TinyUNet());
        var before = target.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
        var e = Assert.Throws<DdpmException>(() => CheckpointStore.LoadWeights(target, file));
        Assert.StartsWith(file + ":", e.Message);
        Assert.DoesNotContain("\n", e.Message);
        Assert.Contains("3 tensor(s) differ", e.Message);
        Assert.Contains($"{dropped} [{string.Join(", ", source.state_dict()[dropped].shape)}] missing", e.Message);
        Assert.Contains($"{widened} is F64, the network needs F32", e.Message);
        Assert.Contains("extra.weight [2] unexpected", e.Message);
        foreach (var (k, v) in target.state_dict()) Assert.True(v.equal(before[k]).all().item<bool>(), k);
    }

    [Fact]
    public void WeightsOfAnotherPresetSayWhichPresetTheyLookLike()
    {
        using var scope = NewDisposeScope();
        var dir = TestUtil.TempDir();
        using var mnist = new UNet(Presets.Get("mnist-small"));
        var file = Path.Combine(dir, "mnist-small.safetensors");
        mnist.save_safetensors(file);

        // Into a 3-channel tiny U-Net: the first convolution's input channels and many widths differ.
        using var tiny = new UNet(TestUtil.TinyUNet(channels: 3));
        var e = Assert.Throws<DdpmException>(() => CheckpointStore.LoadWeights(tiny, file));
        Assert.DoesNotContain("\n", e.Message);
        Assert.DoesNotContain("broadcast", e.Message);
        Assert.Contains("has shape [", e.Message);
        Assert.Contains("more)", e.Message);
        long parameters = mnist.parameters().Sum(p => p.numel());
        Assert.Contains($"the file's {parameters.ToString("N0", System.Globalization.CultureInfo.InvariantCulture)} parameters match preset mnist-small at 1 channel", e.Message);
    }
}

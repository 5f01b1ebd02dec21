using System.Text.Json.Nodes;
using Ddpm.Diffusion;
using Ddpm.Interop;
using Ddpm.IO;
using Ddpm.Models;
using Ddpm.Runs;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;
using Xunit.Abstractions;

namespace Ddpm.Tests.Interop;

/// <summary>
/// The diffusers reader and writer against folders written by diffusers' own code, with reference outputs of its
/// <c>UNet2DModel</c> (Fixtures/README.md).
/// </summary>
public sealed class DiffusersFolderTests(ITestOutputHelper output) : IDisposable
{
    public void Dispose() => FaultInjection.Hook = null;

    internal static string Fixture(string name) => Path.Combine(TestUtil.RepoRoot(), "tests", "Ddpm.Tests", "Interop", "Fixtures", name);

    [Theory]
    [InlineData("cifar10-layout", 3, 32, new[] { 1, 2, 2, 2 }, 16)]
    [InlineData("grey28", 1, 28, new[] { 1, 2, 2 }, 7)]
    public void ReadsTheLayoutAndTheSchedulerDiffusersWrote(string name, int channels, int size, int[] mult, int attention)
    {
        using var model = PretrainedModel.Open(Fixture(name));
        Assert.Equal(PretrainedFormat.Diffusers, model.Format);
        var m = model.Model;
        Assert.Equal((channels, 0, size, 16, 2, 8), (m.InChannels, m.OutChannels, m.ImageSize, m.BaseChannels, m.NumResBlocks, m.NormGroups));
        Assert.Equal(mult, m.ChannelMult);
        Assert.Equal(new[] { attention }, m.AttentionResolutions);
        Assert.True(m.ResampleWithConv);
        // google/ddpm-cifar10-32's scheduler: linear 1e-4 to 0.02, T = 1000, fixed_large, epsilon, clip_sample.
        Assert.Equal(new DiffusionSettings(ScheduleKind.Linear, 1000, 1e-4, 0.02, VarianceType.FixedLarge, PredictionType.Epsilon, "clip"), model.Diffusion);
    }

    /// <summary>
    /// The project's forward pass with the folder's weights against diffusers' own UNet2DModel output on the same input:
    /// to 1e-5 of the output's scale in float32 (both are float32 roundings of the same network; a wrong mapping, the
    /// sin/cos order or the up blocks' order moves it by orders of magnitude more).
    /// </summary>
    [Theory]
    [InlineData("cifar10-layout")]
    [InlineData("grey28")]
    public void ForwardPassMatchesDiffusersUNet2DModel(string name)
    {
        using var scope = NewDisposeScope();
        var reference = Safetensors.LoadStateDict(Path.Combine(Fixture(name), "reference.safetensors"));
        using var model = PretrainedModel.Open(Fixture(name));
        using var net = model.CreateNetwork();
        net.eval();
        Tensor y;
        using (no_grad()) y = net.call(reference["x"], reference["t"]);
        double scale = reference["out"].abs().max().item<float>();
        Assert.InRange(scale, 0.01, 100);
        double err = (y - reference["out"]).abs().max().item<float>();
        Assert.True(err <= 1e-5 * scale, $"max |ours - diffusers| = {err:E3} against outputs up to {scale:F4}");

        // In float64 the remaining difference is diffusers' float32 time code (it computes the sinusoid in float32 even
        // for a float64 network): far below float32 rounding of the output, far above float64's.
        net.to(ScalarType.Float64);
        using (no_grad()) y = net.call(reference["x"].to(ScalarType.Float64), reference["t"]);
        double err64 = (y - reference["out_float64"]).abs().max().item<double>();
        output.WriteLine($"{name}: outputs up to {scale:F4}; max |ours - diffusers| {err:E2} in float32, {err64:E2} in float64");
        Assert.True(err64 <= 1e-6 * scale, $"float64: max |ours - diffusers| = {err64:E3}");
    }

    /// <summary>Checkpoints saved before diffusers' attention rewrite (query, key, value, proj_attn; a torch.save .bin) give the same network.</summary>
    [Fact]
    public void OlderAttentionNamesInATorchSaveFileGiveTheSameNetwork()
    {
        using var scope = NewDisposeScope();
        var dir = CopyFixture("cifar10-layout");
        File.Delete(Path.Combine(dir, "unet", "diffusion_pytorch_model.safetensors"));
        File.Move(Path.Combine(dir, "unet", "diffusion_pytorch_model.old-attention-names.bin"), Path.Combine(dir, "unet", "diffusion_pytorch_model.bin"));
        using var old = PretrainedModel.Open(dir);
        using var current = PretrainedModel.Open(Fixture("cifar10-layout"));
        using var a = old.CreateNetwork();
        using var b = current.CreateNetwork();
        var sb = b.state_dict();
        foreach (var (key, t) in a.state_dict()) Assert.True(t.equal(sb[key]).all().item<bool>(), key);
        Assert.EndsWith(".bin", old.WeightsFile);
    }

    /// <summary>
    /// What the writer produces has the tensor names, shapes and configuration diffusers itself wrote for the same layout,
    /// so <c>UNet2DModel.from_pretrained</c> builds the same network from it.
    /// </summary>
    [Fact]
    public void WrittenFolderHasTheNamesShapesAndConfigurationDiffusersWrites()
    {
        using var scope = NewDisposeScope();
        using var model = PretrainedModel.Open(Fixture("cifar10-layout"));
        using var net = model.CreateNetwork();
        var outDir = Path.Combine(TestUtil.TempDir(), "exported");
        DiffusersFolder.Write(outDir, model.Model, model.Diffusion, net);

        var theirs = SafetensorsHeader.Read(Path.Combine(Fixture("cifar10-layout"), "unet", "diffusion_pytorch_model.safetensors"));
        var ours = SafetensorsHeader.Read(Path.Combine(outDir, "unet", "diffusion_pytorch_model.safetensors"));
        Assert.Equal(theirs.Keys.Order(StringComparer.Ordinal), ours.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, entry) in theirs) Assert.Equal(entry.Shape, ours[key].Shape);
        Assert.All(ours.Values, e => Assert.Equal("F32", e.Dtype));

        var theirConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixture("cifar10-layout"), "unet", "config.json")))!.AsObject();
        var ourConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "unet", "config.json")))!.AsObject();
        foreach (var (key, value) in theirConfig.Where(kv => kv.Key != "_diffusers_version"))
            Assert.True(JsonNode.DeepEquals(Normalise(value), Normalise(ourConfig[key])), $"{key}: diffusers wrote {value?.ToJsonString()}, ours {ourConfig[key]?.ToJsonString()}");

        var theirScheduler = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixture("cifar10-layout"), "scheduler", "scheduler_config.json")))!.AsObject();
        var ourScheduler = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "scheduler", "scheduler_config.json")))!.AsObject();
        foreach (var (key, value) in theirScheduler.Where(kv => kv.Key != "_diffusers_version"))
            Assert.True(JsonNode.DeepEquals(Normalise(value), Normalise(ourScheduler[key])), $"scheduler {key}: diffusers wrote {value?.ToJsonString()}, ours {ourScheduler[key]?.ToJsonString()}");
        Assert.Equal("DDPMPipeline", JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "model_index.json")))!["_class_name"]!.GetValue<string>());
    }

    /// <summary>Numbers compare by value (1 and 1.0 are the same setting).</summary>
    private static JsonNode? Normalise(JsonNode? node) => node switch
    {
        JsonValue v when v.TryGetValue<double>(out var d) => JsonValue.Create(d),
        JsonArray a => new JsonArray(a.Select(Normalise).ToArray()),
        _ => node?.DeepClone(),
    };

    /// <summary>
    /// A configuration that leaves every layout key to diffusers' defaults (as diffusers' own training example writes
    /// it) reads with those defaults: the [cos, sin] time code without shift, GroupNorm eps 1e-5, symmetric padding of
    /// the down-sampling conv, heads of 8 channels, attention in the middle.
    /// </summary>
    [Fact]
    public void KeysLeftOutTakeUNet2DModelsDefaults()
    {
        var json = JsonNode.Parse("""
            {"_class_name": "UNet2DModel", "sample_size": 16, "in_channels": 1, "out_channels": 1, "block_out_channels": [16, 32],
             "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"], "norm_num_groups": 8}
            """)!.AsObject();
        var m = DiffusersUNetConfig.FromJson(json, "config.json");
        Assert.Equal((true, 0.0, 1e-5, 1, 8, true, 0.0), (m.FlipSinToCos, m.FreqShift, m.NormEps, m.DownsamplePadding, m.AttentionHeadChannels, m.MidAttention, m.Dropout));
        Assert.Equal((16, 2), (m.BaseChannels, m.NumResBlocks));
        Assert.Equal(new[] { 1, 2 }, m.ChannelMult);
        Assert.Equal(new[] { 8 }, m.AttentionResolutions);
    }

    /// <summary>Export then import gives identical tensors, layout and diffusion settings.</summary>
    [Theory]
    [InlineData(PredictionType.Epsilon, VarianceType.FixedLarge, ScheduleKind.Linear, false)]
    [InlineData(PredictionType.Velocity, VarianceType.LearnedRange, ScheduleKind.Cosine, false)]
    [InlineData(PredictionType.StartX, VarianceType.FixedSmall, ScheduleKind.Linear, true)]
    public void ExportThenImportGivesIdenticalTensors(PredictionType prediction, VarianceType variance, ScheduleKind schedule, bool diffusersLayout)
    {
        using var scope = NewDisposeScope();
        var config = TestUtil.TinyUNet(channels: 3);
        if (variance == VarianceType.LearnedRange) config.OutChannels = 6;
        if (diffusersLayout)
        {
            // diffusers' own defaults for the settings the original fixes otherwise, and no attention in the middle.
            config.FlipSinToCos = true;
            config.FreqShift = 0;
            config.NormEps = 1e-5;
            config.DownsamplePadding = 1;
            config.AttentionHeadChannels = 4;
            config.MidAttention = false;
        }
        manual_seed(3);
        using var net = new UNet(config);
        using (no_grad())
            foreach (var p in net.parameters()) p.normal_(0, 0.05); // no tensor at its initial value
        var settings = new DiffusionSettings(schedule, 50, 2e-4, 0.03, variance, prediction, "none");
        var dir = Path.Combine(TestUtil.TempDir(), "roundtrip");
        DiffusersFolder.Write(dir, config, settings, net);
        using var back = PretrainedModel.Open(dir);
        Assert.Equal(settings, back.Diffusion);
        Assert.Equal(config.ChannelMult, back.Model.ChannelMult);
        Assert.Equal((config.EffectiveOutChannels, config.AttentionResolutions[0], config.Dropout), (back.Model.EffectiveOutChannels, back.Model.AttentionResolutions[0], back.Model.Dropout));
        Assert.Equal((config.FlipSinToCos, config.FreqShift, config.NormEps, config.DownsamplePadding, config.AttentionHeadChannels, config.MidAttention),
            (back.Model.FlipSinToCos, back.Model.FreqShift, back.Model.NormEps, back.Model.DownsamplePadding, back.Model.AttentionHeadChannels, back.Model.MidAttention));
        using var again = back.CreateNetwork();
        var mine = net.state_dict();
        foreach (var (key, t) in again.state_dict()) Assert.True(t.equal(mine[key]).all().item<bool>(), key);
    }

    /// <summary>A crash at any point of the write leaves no folder at the destination, and a later write succeeds.</summary>
    [Theory]
    [InlineData("diffusers: weights written")]
    [InlineData("diffusers: temporary folder complete")]
    public void CrashDuringWriteLeavesNoPartFolder(string point)
    {
        using var scope = NewDisposeScope();
        using var net = new UNet(TestUtil.TinyUNet());
        var parent = TestUtil.TempDir();
        var dir = Path.Combine(parent, "out");
        var seen = new List<string>();
        FaultInjection.Hook = p => { seen.Add(p); if (p == point) throw new FaultInjection.Crash(p); };
        Assert.Throws<FaultInjection.Crash>(() => DiffusersFolder.Write(dir, TestUtil.TinyUNet(), DiffusionSettings.Ho2020, net));
        FaultInjection.Hook = null;
        Assert.Contains(point, seen);
        Assert.False(Directory.Exists(dir));
        DiffusersFolder.Write(dir, TestUtil.TinyUNet(), DiffusionSettings.Ho2020, net);
        using var back = PretrainedModel.Open(dir);
        Assert.Equal(DiffusionSettings.Ho2020, back.Diffusion);
    }

    [Fact]
    public void RefusesToWriteIntoAFolderThatHoldsFiles()
    {
        using var net = new UNet(TestUtil.TinyUNet());
        var dir = TestUtil.TempDir();
        File.WriteAllText(Path.Combine(dir, "keep.txt"), "mine");
        var e = Assert.Throws<DdpmException>(() => DiffusersFolder.Write(dir, TestUtil.TinyUNet(), DiffusionSettings.Ho2020, net));
        Assert.Contains("not empty", e.Message);
        Assert.Equal("mine", File.ReadAllText(Path.Combine(dir, "keep.txt")));
    }

    /// <summary>A layout the project cannot express is a one-line error naming the file and the key; so is a key the reader does not know.</summary>
    [Theory]
    [InlineData("resnet_time_scale_shift", "\"scale_shift\"")]
    [InlineData("act_fn", "\"gelu\"")]
    [InlineData("class_embed_type", "\"timestep\"")]
    [InlineData("up_block_types", "[\"UpBlock2D\", \"AttnUpBlock2D\", \"UpBlock2D\", \"UpBlock2D\"]")]
    [InlineData("block_out_channels", "[16, 24, 32, 32]")]
    [InlineData("brand_new_setting", "1")]
    public void InexpressibleSettingsAreRefusedNamingTheKey(string key, string json)
    {
        var dir = CopyFixture("cifar10-layout");
        var file = Path.Combine(dir, "unet", "config.json");
        var config = JsonNode.Parse(File.ReadAllText(file))!.AsObject();
        config[key] = JsonNode.Parse(json);
        File.WriteAllText(file, config.ToJsonString());
        var e = Assert.Throws<DdpmException>(() => PretrainedModel.Open(dir).Dispose());
        Assert.StartsWith(file + ": " + key, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    /// <summary>A network whose output channels do not fit the scheduler's variance (2C for a fixed one, C for a learned one) is refused.</summary>
    [Theory]
    [InlineData("fixed_large", 6)]
    [InlineData("learned_range", 3)]
    public void OutputChannelsThatDoNotFitTheVarianceAreRefused(string variance, int outChannels)
    {
        var dir = CopyFixture("cifar10-layout");
        var unet = Path.Combine(dir, "unet", "config.json");
        var config = JsonNode.Parse(File.ReadAllText(unet))!.AsObject();
        config["out_channels"] = outChannels;
        File.WriteAllText(unet, config.ToJsonString());
        var scheduler = Path.Combine(dir, "scheduler", "scheduler_config.json");
        var s = JsonNode.Parse(File.ReadAllText(scheduler))!.AsObject();
        s["variance_type"] = variance;
        File.WriteAllText(scheduler, s.ToJsonString());
        var e = Assert.Throws<DdpmException>(() => PretrainedModel.Open(dir).Dispose());
        Assert.Contains($"the network outputs {outChannels} channels for 3-channel images", e.Message);
    }

    /// <summary>A learned variance trains through the bound: the configuration of an imported model takes the hybrid loss, so it validates.</summary>
    [Fact]
    public void AnImportedLearnedVarianceModelGetsTheHybridLoss()
    {
        using var net = new UNet(new UNetConfig { InChannels = 1, OutChannels = 2, ImageSize = 8, BaseChannels = 8, ChannelMult = [1, 2], NumResBlocks = 1, AttentionResolutions = [4], NormGroups = 4 });
        var dir = Path.Combine(TestUtil.TempDir(), "learned");
        DiffusersFolder.Write(dir, net.Config, DiffusionSettings.Ho2020 with { Variance = VarianceType.LearnedRange }, net);
        using var model = PretrainedModel.Open(dir);
        var c = model.ToConfig();
        Assert.Equal((VarianceType.LearnedRange, LossType.Hybrid), (c.Variance, c.Loss));
        c.Validate(requireData: false);
    }

    [Theory]
    [InlineData("beta_schedule", "\"scaled_linear\"")]
    [InlineData("trained_betas", "[0.1, 0.2]")]
    [InlineData("prediction_type", "\"flow\"")]
    [InlineData("rescale_betas_zero_snr", "true")]
    [InlineData("clip_sample_range", "2.0")]
    public void InexpressibleSchedulerSettingsAreRefusedNamingTheKey(string key, string json)
    {
        var dir = CopyFixture("cifar10-layout");
        var file = Path.Combine(dir, "scheduler", "scheduler_config.json");
        var config = JsonNode.Parse(File.ReadAllText(file))!.AsObject();
        config[key] = JsonNode.Parse(json);
        File.WriteAllText(file, config.ToJsonString());
        var e = Assert.Throws<DdpmException>(() => PretrainedModel.Open(dir).Dispose());
        Assert.StartsWith(file + ": " + key, e.Message);
    }

    /// <summary>The scheduler's defaults are DDPMScheduler's (fixed_small, epsilon, clip_sample); older files name T "timesteps".</summary>
    [Fact]
    public void SchedulerKeysLeftOutTakeDiffusersDefaults()
    {
        var s = DiffusersScheduler.FromJson(JsonNode.Parse("""{"_class_name": "GaussianDDPMScheduler", "timesteps": 500, "beta_end": 0.03}""")!.AsObject(), "x");
        Assert.Equal(new DiffusionSettings(ScheduleKind.Linear, 500, 1e-4, 0.03, VarianceType.FixedSmall, PredictionType.Epsilon, "clip"), s);
        var v = DiffusersScheduler.FromJson(JsonNode.Parse("""{"prediction_type": "v_prediction", "beta_schedule": "squaredcos_cap_v2", "variance_type": "learned_range", "clip_sample": false}""")!.AsObject(), "x");
        Assert.Equal((ScheduleKind.Cosine, PredictionType.Velocity, VarianceType.LearnedRange, "none"), (v.Schedule, v.Prediction, v.Variance, v.Threshold));
        // Imagen's thresholding capped at 1 is plain clipping; uncapped (our writer's 1e6) is the project's dynamic thresholding.
        Assert.Equal("clip", DiffusersScheduler.FromJson(JsonNode.Parse("""{"thresholding": true}""")!.AsObject(), "x").Threshold);
        Assert.Equal("dynamic", DiffusersScheduler.FromJson(JsonNode.Parse("""{"thresholding": true, "sample_max_value": 1e6}""")!.AsObject(), "x").Threshold);
    }

    /// <summary>A bare UNet2DModel folder (config.json and weights side by side, as early hub repositories) with its scheduler beside it.</summary>
    [Fact]
    public void ReadsTheFlatLayoutOfEarlyHubRepositories()
    {
        var dir = TestUtil.TempDir();
        foreach (var f in Directory.GetFiles(Path.Combine(Fixture("grey28"), "unet"))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        File.Copy(Path.Combine(Fixture("grey28"), "scheduler", "scheduler_config.json"), Path.Combine(dir, "scheduler_config.json"));
        Assert.Equal(PretrainedFormat.Diffusers, PretrainedModel.Detect(dir));
        using var model = PretrainedModel.Open(dir);
        Assert.Equal(28, model.Model.ImageSize);
        using var net = model.CreateNetwork();
    }

    internal static string CopyFixture(string name)
    {
        var dir = Path.Combine(TestUtil.TempDir(), name);
        foreach (var f in Directory.GetFiles(Fixture(name), "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(dir, Path.GetRelativePath(Fixture(name), f));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(f, target);
        }
        return dir;
    }
}

using Ddpm.Tests.Sampling;
using Ddpm.Imaging;
using Ddpm.Models;
using Ddpm.Pipelines;
using Ddpm.Runs;
using Ddpm.Sampling;
using Ddpm.Training;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.Tests.Pipelines;

/// <summary>A real checkpoint of a tiny run after 3 updates, shared read-only by the tests of the class.</summary>
public sealed class TinyCheckpoint
{
    public string Dir { get; }

    public TinyCheckpoint()
    {
        using var data = TestUtil.TinyData();
        using var t = Trainer.Start(TestUtil.TinyConfig(steps: 3), Path.Combine(TestUtil.TempDir(), "run"), data);
        for (int i = 0; i < 3; i++) t.TrainStep();
        Dir = t.SaveCheckpoint();
    }

    /// <summary>A copy of the checkpoint folder that a test may change.</summary>
    public string Copy()
    {
        var copy = Path.Combine(TestUtil.TempDir(), Path.GetFileName(Dir));
        Directory.CreateDirectory(copy);
        foreach (var f in Directory.GetFiles(Dir)) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        return copy;
    }
}

/// <summary>
/// Which weights a loaded pipeline (and so <c>ddpm sample</c>) generates with: the checkpoint's ema.safetensors by
/// default, model.safetensors with useEma false (<c>--no-ema</c>) or when that file is named. The expectation is the
/// tensors as the files hold them, read straight from the files.
/// </summary>
public class EmaOrRawWeightsTests : IClassFixture<TinyCheckpoint>
{
    private readonly TinyCheckpoint _ckpt;

    public EmaOrRawWeightsTests(TinyCheckpoint ckpt) => _ckpt = ckpt;

    private static void AssertHolds(nn.Module model, Dictionary<string, Tensor> expected)
    {
        var loaded = model.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), loaded.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, p) in loaded)
            Assert.True(p.detach().cpu().equal(expected[name]).all().item<bool>(), $"{name} is not the file's tensor");
    }

    [Fact]
    public void EachLoadedModelHoldsExactlyTheTensorsOfItsFile()
    {
        using var scope = NewDisposeScope();
        var ckpt = _ckpt.Dir;
        var ema = Safetensors.LoadStateDict(Path.Combine(ckpt, CheckpointStore.EmaFile));
        var raw = Safetensors.LoadStateDict(Path.Combine(ckpt, CheckpointStore.ModelFile));
        // After 3 updates with EMA warm-up (decay 0, then 1 - 2^-0.75 = 0.41, then 1 - 3^-0.75 = 0.56) every parameter
        // that received a gradient in updates 2 or 3 differs between the two files; the test needs most to differ.
        int differing = ema.Keys.Count(k => !ema[k].equal(raw[k]).all().item<bool>());
        Assert.True(differing > ema.Count / 2, $"only {differing} of {ema.Count} tensors differ");

        using (var p = DdpmPipeline.Load(Path.Combine(ckpt, "..", ".."), CPU))                 // run folder: EMA by default
        {
            AssertHolds(p.Model, ema);
            Assert.False(p.Model.training);
        }
        using (var p = DdpmPipeline.Load(ckpt, CPU, useEma: false))                            // what --no-ema passes
            AssertHolds(p.Model, raw);
        using (var p = DdpmPipeline.Load(Path.Combine(ckpt, CheckpointStore.ModelFile), CPU))  // a named file wins
            AssertHolds(p.Model, raw);
        using (var p = DdpmPipeline.Load(Path.Combine(ckpt, CheckpointStore.EmaFile), CPU, useEma: false))
            AssertHolds(p.Model, ema);
    }

    /// <summary>
    /// <c>ddpm sample</c> with and without <c>--no-ema</c> against the pipeline loaded with each set (deterministic DDIM,
    /// 2 steps, the same seed). In a copy of the checkpoint the EMA file is first replaced by different random weights,
    /// so that the two sets give clearly different images (3 updates of a tiny run move the weights too little to
    /// change 8-bit pixels reliably).
    /// </summary>
    [Fact]
    public void SampleCommandUsesEmaWeightsUnlessNoEmaIsGiven()
    {
        using var scope = NewDisposeScope();
        var ckpt = _ckpt.Copy();
        var config = CheckpointStore.ReadState(ckpt).Config.Model!;
        manual_seed(17);
        using (var other = new UNet(config))
        {
            using (no_grad()) foreach (var (_, p) in other.named_parameters()) p.normal_(0, 0.3);
            other.save_safetensors(Path.Combine(ckpt, CheckpointStore.EmaFile));
        }
        var outDir = TestUtil.TempDir();
        byte[] Cli(string name, params string[] extra)
        {
            var path = Path.Combine(outDir, name);
            var args = new[] { "sample", "-c", ckpt, "-n", "2", "-o", path, "--seed", "5", "--sampler", "ddim", "--sample-steps", "2", "--no-progress" };
            var (code, _, err) = TestUtil.Cli(args.Concat(extra).ToArray());
            Assert.True(code == 0, err);
            return File.ReadAllBytes(path);
        }
        byte[] Library(string name, bool useEma)
        {
            var path = Path.Combine(outDir, name);
            using var pipe = DdpmPipeline.Load(ckpt, CPU, useEma);
            using var images = pipe.Sample(2, 5, new DdimSampler(new DdimOptions { Steps = 2 }));
            ImageIO.SaveGrid(images, path, scale: Trainer.GridScale(config.ImageSize));
            return File.ReadAllBytes(path);
        }
        var cliEma = Cli("cli-ema.png");
        var cliRaw = Cli("cli-raw.png", "--no-ema");
        Assert.Equal(Library("lib-ema.png", useEma: true), cliEma);
        Assert.Equal(Library("lib-raw.png", useEma: false), cliRaw);
        Assert.NotEqual(cliEma, cliRaw);
    }
}

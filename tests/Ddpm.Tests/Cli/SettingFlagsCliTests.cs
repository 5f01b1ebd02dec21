using Ddpm.Runs;
using System.CommandLine;
using Ddpm.Cli;
using Ddpm.Cli.Commands;
using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Tests.Cli;

/// <summary>
/// The command line's flags come from the settings: train has one option per TrainConfig setting named after its JSON
/// key, the library's errors name settings and the CLI prints them with the flag, and an option name means one thing
/// in every command.
/// </summary>
public class SettingFlagsCliTests
{
    private static Command Command(string name) =>
        CliApp.Build(new CliContext(TextWriter.Null, TextWriter.Null)).Subcommands.Single(c => c.Name == name);

    private static IEnumerable<Command> AllCommands(Command c) => new[] { c }.Concat(c.Subcommands.SelectMany(AllCommands));

    [Fact]
    public void EveryTrainSettingHasTheFlagOfItsJsonKey()
    {
        var train = Command("train");
        foreach (var s in TrainConfig.Settings)
        {
            string flag = "--" + s.Key.Replace('_', '-');
            var option = Assert.Single(train.Options, o => o.Name == flag);
            Assert.StartsWith(s.Help, option.Description);
        }
        // The older spellings stay as aliases of the new names.
        Assert.Contains("--lr", train.Options.Single(o => o.Name == "--learning-rate").Aliases);
        Assert.Contains("--warmup", train.Options.Single(o => o.Name == "--warmup-steps").Aliases);
        Assert.Contains("--run-dir", train.Options.Single(o => o.Name == "--output").Aliases);
    }

    [Fact]
    public void EveryKindOfSettingParsesFromItsFlagIntoTheTypedConfiguration()
    {
        var model = Path.Combine(TestUtil.TempDir(), "net.json");
        File.WriteAllText(model, System.Text.Json.JsonSerializer.Serialize(TestUtil.TinyUNet(channels: 3), TrainConfig.Json));
        var bindings = SettingOptions.ForTrainConfig();
        var cmd = new Command("train");
        foreach (var b in bindings) cmd.Options.Add(b.Option);
        var parse = cmd.Parse(new[]
        {
            "--adam-beta1", "0.5", "--ema-inv-gamma", "2", "--ema-warmup", "false", "--variance", "fixed-small", "--device", "cuda:1",
            "--eval-classifier", "fashion_mnist", "--lr", "0.01", "--model", model, "--timestep-sampler", "loss-aware", "--max-images", "7",
        });
        Assert.Empty(parse.Errors);
        var c = new TrainConfig();
        foreach (var b in bindings.Where(b => parse.GetResult(b.Option) is { Implicit: false })) b.Apply(c, parse);
        Assert.Equal((0.5, 2.0, false, 0.01, 7), (c.AdamBeta1, c.EmaInvGamma, c.EmaWarmup, c.LearningRate, c.MaxImages));
        Assert.Equal(Ddpm.Diffusion.VarianceType.FixedSmall, c.Variance);
        Assert.Equal(Ddpm.Configuration.TimestepSamplerKind.Importance, c.TimestepSampler);
        Assert.Equal(new Ddpm.Runtime.DeviceSpec(Ddpm.Runtime.DeviceKind.Cuda, 1), c.Device);
        Assert.Equal(Ddpm.Configuration.EvalClassifierChoice.FashionMnist, c.EvalClassifier);
        Assert.Equal(3, c.Model!.InChannels);
        // A setting absent from the command line keeps the configuration's value.
        Assert.Equal(new TrainConfig().Steps, c.Steps);
    }

    [Theory]
    [InlineData("error: --ema-decay 2: must be in [0, 1)", "--ema-decay", "2")]
    [InlineData("error: --learning-rate -1: must be a positive number", "--lr", "-1")]
    [InlineData("error: --adam-beta2 1: must be in [0, 1)", "--adam-beta2", "1")]
    [InlineData("error: --ema-inv-gamma 0: must be positive", "--ema-inv-gamma", "0")]
    [InlineData("error: --warmup-steps -2: must not be negative", "--warmup", "-2")]
    [InlineData("error: --variance bogus: expected fixedlarge, fixedsmall, learned or learned-range", "--variance", "bogus")]
    [InlineData("error: --loss hybrid: trains only a learned variance, but variance is fixed-small: use variance learned-range or learned (or loss simple)", "--variance", "fixed_small", "--loss", "hybrid")]
    [InlineData("error: --device tpu: expected cpu, cuda, cuda:N or auto", "--device", "tpu")]
    [InlineData("error: --lr-decay step: expected none, cosine or linear", "--lr-decay", "step")]
    [InlineData("error: --lr-decay-steps applies to a learning-rate decay (lr_decay is none)", "--lr-decay-steps", "500")]
    [InlineData("error: --lr-final-ratio 0.1: applies to a learning-rate decay (lr_decay is none)", "--lr-final-ratio", "0.1")]
    [InlineData("error: --lr-final-ratio 1.5: must be in [0, 1]", "--lr-decay", "cosine", "--lr-final-ratio", "1.5")]
    [InlineData("error: --lr-decay-steps 0: must be at least 1", "--lr-decay", "linear", "--lr-decay-steps", "0")]
    [InlineData("error: --max-minutes -5: must be 0 (no limit) or a positive number of minutes", "--max-minutes", "-5")]
    public void LibraryErrorsArePrintedWithTheSettingsFlag(string expected, params string[] args)
    {
        int threadsBefore = get_num_threads();
        var (code, output, err) = TestUtil.Cli(new[] { "train", "--threads", "1", "--no-progress", "-o", Path.Combine(TestUtil.TempDir(), "run") }.Concat(args).ToArray());
        set_num_threads(threadsBefore);
        Assert.True(code == 1, err + output);
        Assert.Equal(expected, err.Trim());
    }

    [Theory]
    [InlineData("sample", "--steps", "4", "--sample-steps")]
    [InlineData("sample", "--timesteps", "0,5", "--timestep-list")]
    [InlineData("interpolate", "--steps", "4", "--sample-steps")]
    [InlineData("distance", "--steps", "4", "--sample-steps")]
    public void AFlagWhoseMeaningMovedIsAOneLineErrorNamingTheNewFlag(string command, string old, string value, string renamed)
    {
        var args = command == "distance" ? new[] { command, "a", "b", old, value } : new[] { command, "-c", "/no/run", old, value };
        var (code, _, err) = TestUtil.Cli(args);
        Assert.Equal(2, code);
        Assert.StartsWith($"error: {old} is now {renamed} (", err.Trim());
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void EachOptionNameMeansOneThingInEveryCommand()
    {
        var root = CliApp.Build(new CliContext(TextWriter.Null, TextWriter.Null));
        var visible = AllCommands(root).SelectMany(c => c.Options.Where(o => !o.Hidden).Select(o => (Command: c.Name, Option: o))).ToList();
        // -o is always --output, the path of the command's main product.
        Assert.All(visible.Where(x => x.Option.Aliases.Contains("-o")), x => Assert.Equal("--output", x.Option.Name));
        // --steps is train's optimizer steps only; --timesteps is T (train, schedule, diffuse).
        Assert.Equal(new[] { "train" }, visible.Where(x => x.Option.Name == "--steps").Select(x => x.Command));
        Assert.Equal(new[] { "diffuse", "schedule", "train" }, visible.Where(x => x.Option.Name == "--timesteps").Select(x => x.Command).Order());
        // Denoising steps are --sample-steps wherever samples are drawn.
        Assert.Equal(new[] { "distance", "fid", "interpolate", "sample", "stats", "train" },
            visible.Where(x => x.Option.Name == "--sample-steps").Select(x => x.Command).Order());
    }
}

using System.CommandLine;
using System.Globalization;
using Ddpm.Models;

namespace Ddpm.Cli.Commands;

/// <summary><c>ddpm info</c>: parameter and multiply-add counts of the presets.</summary>
public static class InfoCommand
{
    public static Command Create(CliContext ctx)
    {
        var preset = new Option<string>("--preset", "-p") { Description = "A preset (default: all of them)" };
        var size = new Option<int?>("--image-size") { Description = "Image size (default: the preset's)" };
        var channels = new Option<int?>("--channels") { Description = "1 or 3 (default: the preset's)" };
        var model = new Option<string>("--model") { Description = "A network as a JSON file holding a run's \"model\" object, instead of a preset" };
        var cmd = new Command("info", "Print a preset's configuration, parameter count and the multiply-adds of one forward pass.")
        {
            preset, size, channels, model,
        };
        cmd.SetAction(parse =>
        {
            var names = parse.GetValue(preset) is string p ? new[] { p } : Presets.Names.ToArray();
            UNetConfig? custom = null;
            if (parse.GetValue(model) is string file)
            {
                if (parse.GetValue(preset) is not null) throw new DdpmException("--model and --preset cannot be combined: give one network");
                custom = (UNetConfig?)Ddpm.Runs.TrainConfig.ParseSetting(Ddpm.Runs.TrainConfig.Settings.Single(s => s.Key == "model"), file)!;
                names = [file];
            }
            foreach (var name in names)
            {
                var config = custom ?? Presets.Get(name, parse.GetValue(size), parse.GetValue(channels));
                config.Validate();
                using var network = new UNet(config);
                long parameters = ModelStats.CountParameters(network);
                long macs = ModelStats.CountMacs(config);
                var inv = CultureInfo.InvariantCulture;
                ctx.Out.WriteLine($"{name}: {config.InChannels}x{config.ImageSize}x{config.ImageSize}, ch {config.BaseChannels}, mult ({string.Join(",", config.ChannelMult)}), " +
                    $"{config.NumResBlocks} res blocks, attention at ({string.Join(",", config.AttentionResolutions)}), dropout {config.Dropout.ToString(inv)}");
                ctx.Out.WriteLine(string.Format(inv, "  parameters: {0:N0} ({1:F1}M)", parameters, parameters / 1e6));
                ctx.Out.WriteLine(string.Format(inv, "  multiply-adds per image (one forward pass): {0:N0} ({1:F3} GMAC, {2:F3} GFLOP)", macs, macs / 1e9, 2 * macs / 1e9));
            }
            return 0;
        });
        return cmd;
    }
}

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
        var cmd = new Command("info", "Print a preset's configuration, parameter count and the multiply-adds of one forward pass.")
        {
            preset, size, channels,
        };
        cmd.SetAction(parse =>
        {
            var names = parse.GetValue(preset) is string p ? new[] { p } : Presets.Names.ToArray();
            foreach (var name in names)
            {
                var config = Presets.Get(name, parse.GetValue(size), parse.GetValue(channels));
                config.Validate();
                using var model = new UNet(config);
                long parameters = ModelStats.CountParameters(model);
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

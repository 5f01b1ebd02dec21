using System.CommandLine;
using Ddpm.Interop;
using Ddpm.Models;
using Ddpm.Runs;

namespace Ddpm.Cli.Commands;

/// <summary>
/// <c>ddpm convert IN OUT</c>: a run or checkpoint of this project to a diffusers DDPMPipeline folder, or a diffusers
/// folder or original DDPM checkpoint to a run folder (to sample, resume or fine-tune). The direction follows from IN.
/// </summary>
public static class ConvertCommand
{
    public static Command Create(CliContext ctx)
    {
        var input = new Argument<string>("input") { Description = "A run folder, checkpoint folder or weights file of this project; or a diffusers folder; or an original checkpoint (.ckpt, .pth, .pt, .bin)" };
        var output = new Argument<string>("output") { Description = "The folder to write: a diffusers folder when the input is this project's, else a run folder" };
        var noEma = new Option<bool>("--no-ema") { Description = "Export a run's raw weights instead of its EMA weights" };
        var model = new Option<string>("--model") { Description = "An original checkpoint's network as a JSON file holding a run's \"model\" object (default: read from the tensors' shapes)" };
        var reference = new Option<string>("--reference-output") { Description = "Also write the converted network's output on a fixed input (x, t, out; safetensors) for checking it in another framework" };
        var cmd = new Command("convert", "Convert between this project's checkpoints and diffusers folders (DDPMPipeline), or import an original DDPM checkpoint.")
        {
            input, output, noEma, model, reference,
        };
        cmd.SetAction(parse =>
        {
            var from = parse.GetValue(input)!;
            var to = parse.GetValue(output)!;
            UNetConfig? layout = null;
            if (parse.GetValue(model) is string file)
                layout = (UNetConfig?)TrainConfig.ParseSetting(TrainConfig.Settings.Single(s => s.Key == "model"), file);
            var format = PretrainedModel.Detect(from);
            if (layout is not null && format != PretrainedFormat.Original)
                throw new DdpmException($"--model applies to an original checkpoint only ({from} is a {Describe(format)}, which records its network)");
            if (parse.GetValue(noEma) && format != PretrainedFormat.Run)
                throw new DdpmException($"--no-ema applies to this project's runs only ({from} is a {Describe(format)}, which holds one set of weights)");
            using var pretrained = PretrainedModel.Open(from, useEma: !parse.GetValue(noEma), originalModel: layout);
            ctx.Out.WriteLine($"read {Describe(format)} {pretrained.Source}: {ModelStats.CountParameters(pretrained.Model):N0} parameters, "
                + $"{pretrained.Model.InChannels}x{pretrained.Model.ImageSize}x{pretrained.Model.ImageSize}, {pretrained.Diffusion.Describe()}");
            if (format == PretrainedFormat.Run)
            {
                Conversion.ToDiffusers(pretrained, to, parse.GetValue(reference));
                ctx.Out.WriteLine($"wrote diffusers folder {to} ({Path.GetFileName(pretrained.WeightsFile)} of step {pretrained.Step}); "
                    + "in Python: DDPMPipeline.from_pretrained(folder)");
            }
            else
            {
                var checkpoint = Conversion.ToRun(pretrained, to, parse.GetValue(reference));
                ctx.Out.WriteLine($"wrote run folder {to} (checkpoint {checkpoint}); sample with: ddpm sample -c {to}; "
                    + $"fine-tune with: ddpm train --init-from {to} --data DATA");
            }
            if (parse.GetValue(reference) is string referenceFile) ctx.Out.WriteLine($"wrote the network's output on a fixed input to {referenceFile}");
            return 0;
        });
        return cmd;
    }

    private static string Describe(PretrainedFormat format) => format switch
    {
        PretrainedFormat.Diffusers => "diffusers folder",
        PretrainedFormat.Original => "original checkpoint",
        _ => "run checkpoint",
    };
}

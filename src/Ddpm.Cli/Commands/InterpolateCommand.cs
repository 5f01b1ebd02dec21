using System.CommandLine;
using Ddpm.Imaging;
using Ddpm.Pipelines;
using Ddpm.Training;

namespace Ddpm.Cli.Commands;

/// <summary><c>ddpm interpolate</c>: a row of images between two seeds (slerp of their noises, decoded with DDIM).</summary>
public static class InterpolateCommand
{
    public static Command Create(CliContext ctx)
    {
        var checkpoint = new Option<string>("--checkpoint", "-c") { Description = "Run folder, checkpoint folder, or a .safetensors weights file inside one", Required = true };
        var seedA = new Option<long>("--seed-a") { Description = "Seed of the first image's noise", DefaultValueFactory = _ => 0 };
        var seedB = new Option<long>("--seed-b") { Description = "Seed of the last image's noise", DefaultValueFactory = _ => 1 };
        var frames = new Option<int>("--frames") { Description = "Images in the row, both ends included", DefaultValueFactory = _ => 8 };
        var steps = new Option<int>("--sample-steps") { Description = "DDIM steps (eta 0), evenly spaced over T", DefaultValueFactory = _ => 50 };
        var output = new Option<string>("--output", "-o") { Description = "The grid (.png)", DefaultValueFactory = _ => "interpolation.png" };
        var noEma = new Option<bool>("--no-ema") { Description = "Use the raw weights instead of the EMA weights" };
        var threshold = SamplerCliOptions.Threshold();
        var dynamicMax = SamplerCliOptions.DynamicMax();
        var noProgress = CommonOptions.NoProgress();
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var cmd = new Command("interpolate", "Interpolate between two seeds: spherical interpolation of their noises, each decoded with deterministic DDIM.")
        {
            checkpoint, seedA, seedB, frames, steps, SettingOptions.Renamed("--steps", "--sample-steps", "the DDIM steps; --steps is train's optimizer steps"), output, noEma, threshold, dynamicMax, noProgress, device, threads,
        };
        cmd.SetAction(parse =>
        {
            var options = SamplerCliOptions.Build(parse.GetValue(threshold), false, parse.GetValue(dynamicMax));
            int k = parse.GetValue(frames);
            if (k < 2) throw new DdpmException($"--frames {k}: expected at least 2");
            var outPath = parse.GetValue(output)!;
            if (!outPath.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
                throw new DdpmException($"--output {outPath}: expected a .png file");
            var dev = CommonOptions.Setup(parse.GetValue(device)!, parse.GetValue(threads));
            using var pipe = DdpmPipeline.Load(parse.GetValue(checkpoint)!, dev, useEma: !parse.GetValue(noEma));
            int n = parse.GetValue(steps), T = pipe.Diffusion.Timesteps;
            if (n < 1 || n > T) throw new DdpmException($"--sample-steps {n}: the model has T = {T} timesteps, expected 1 to {T}");
            ctx.Out.WriteLine($"checkpoint {pipe.CheckpointDir} (step {pipe.Step}), seeds {parse.GetValue(seedA)} -> {parse.GetValue(seedB)}, {k} frames, ddim {n} of {T} steps, eta 0, device {dev}");
            var token = ctx.CancelOnCtrlC();
            TorchSharp.torch.Tensor? images = null;
            ProgressView.RunSampling(ctx, parse.GetValue(noProgress), "interpolating", progress =>
                images = pipe.Interpolate(parse.GetValue(seedA), parse.GetValue(seedB), k, n, options, progress, token));
            using (images)
                ImageIO.SaveGrid(images!, outPath, columns: k, scale: Trainer.GridScale(pipe.Config.Model!.ImageSize));
            ctx.Out.WriteLine($"wrote grid {outPath}");
            return 0;
        });
        return cmd;
    }
}

using System.CommandLine;
using Ddpm.Imaging;
using Ddpm.Pipelines;
using Ddpm.Sampling;
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
        var output = new Option<string>("--output", "-o") { Description = "The grid (.png)", DefaultValueFactory = _ => "interpolation.png" };
        var noEma = new Option<bool>("--no-ema") { Description = "Use the raw weights instead of the EMA weights" };
        var sampler = new SamplerCliOptions(DdimSampler.RegistryName,
            "The sampler that decodes each noise: ddim (eta 0, the default: Song et al.'s interpolation), dpm-solver, or another deterministic one");
        var noProgress = CommonOptions.NoProgress();
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var cmd = new Command("interpolate", "Interpolate between two seeds: spherical interpolation of their noises, each decoded with deterministic DDIM (or another sampler).")
        {
            checkpoint, seedA, seedB, frames, output, noEma,
        };
        sampler.AddTo(cmd);
        foreach (var o in new Option[] { noProgress, device, threads }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var chosen = sampler.Build(parse);
            int k = parse.GetValue(frames);
            if (k < 2) throw new DdpmException($"--frames {k}: expected at least 2");
            var outPath = parse.GetValue(output)!;
            if (!outPath.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
                throw new DdpmException($"--output {outPath}: expected a .png file");
            var dev = CommonOptions.Setup(parse.GetValue(device)!, parse.GetValue(threads));
            using var pipe = DdpmPipeline.Load(parse.GetValue(checkpoint)!, dev, useEma: !parse.GetValue(noEma));
            string description = SamplerCliOptions.Describe(chosen, pipe.Diffusion.Schedule); // checks the settings before any work
            ctx.Out.WriteLine($"checkpoint {pipe.CheckpointDir} (step {pipe.Step}), seeds {parse.GetValue(seedA)} -> {parse.GetValue(seedB)}, {k} frames, {description}, device {dev}");
            var token = ctx.CancelOnCtrlC();
            TorchSharp.torch.Tensor? images = null;
            ProgressView.RunSampling(ctx, parse.GetValue(noProgress), "interpolating", progress =>
                images = pipe.Interpolate(parse.GetValue(seedA), parse.GetValue(seedB), k, chosen, progress, token));
            using (images)
                ImageIO.SaveGrid(images!, outPath, columns: k, scale: Trainer.GridScale(pipe.Config.Model!.ImageSize));
            ctx.Out.WriteLine($"wrote grid {outPath}");
            return 0;
        });
        return cmd;
    }
}

using System.CommandLine;
using Ddpm.Imaging;
using Ddpm.Pipelines;
using Ddpm.Sampling;
using Ddpm.Training;

namespace Ddpm.Cli.Commands;

/// <summary><c>ddpm sample</c>: generate images from a run folder or checkpoint.</summary>
public static class SampleCommand
{
    public static Command Create(CliContext ctx)
    {
        var checkpoint = new Option<string>("--checkpoint", "-c") { Description = "Run folder, checkpoint folder, or a .safetensors weights file inside one", Required = true };
        var count = new Option<int>("--count", "-n") { Description = "Number of images", DefaultValueFactory = _ => 64 };
        var output = new Option<string>("--output", "-o") { Description = "grid.png for one grid, or a folder for one PNG per image", DefaultValueFactory = _ => "samples.png" };
        var seed = new Option<long>("--seed") { Description = "Seed: the same seed, sampler and batch size give the same images", DefaultValueFactory = _ => 0 };
        var batch = new Option<int>("--batch-size") { Description = "Images denoised at once", DefaultValueFactory = _ => 64 };
        var columns = new Option<int>("--columns") { Description = "Grid columns (0 = square)", DefaultValueFactory = _ => 0 };
        var noEma = new Option<bool>("--no-ema") { Description = "Use the raw weights instead of the EMA weights" };
        var sampler = new SamplerCliOptions();
        var noProgress = CommonOptions.NoProgress();
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var cmd = new Command("sample", "Generate images with DDPM's ancestral sampler (all T steps or respaced), DDIM or DPM-Solver++.")
        {
            checkpoint, count, output, seed, batch, columns, noEma,
        };
        sampler.AddTo(cmd);
        foreach (var o in new Option[] { noProgress, device, threads }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var chosen = sampler.Build(parse);
            var n = parse.GetValue(count);
            var outPath = parse.GetValue(output)!;
            if (parse.GetValue(columns) < 0) throw new DdpmException($"--columns {parse.GetValue(columns)}: must not be negative");
            var dev = CommonOptions.Setup(parse.GetValue(device)!, parse.GetValue(threads));
            using var pipe = DdpmPipeline.Load(parse.GetValue(checkpoint)!, dev, useEma: !parse.GetValue(noEma));
            string description = SamplerCliOptions.Describe(chosen, pipe.Diffusion.Schedule); // checks the settings before any work
            ctx.Out.WriteLine($"checkpoint {pipe.CheckpointDir} (step {pipe.Step}), {n} images, {description}, device {dev}");
            var token = ctx.CancelOnCtrlC();
            TorchSharp.torch.Tensor? images = null;
            ProgressView.RunSampling(ctx, parse.GetValue(noProgress), "sampling", progress =>
                images = pipe.Sample(n, parse.GetValue(seed), chosen, parse.GetValue(batch), progress, token));
            using (images)
            {
                if (outPath.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
                {
                    ImageIO.SaveGrid(images!, outPath, columns: parse.GetValue(columns), scale: Trainer.GridScale(pipe.Config.Model!.ImageSize));
                    ctx.Out.WriteLine($"wrote grid {outPath}");
                }
                else
                {
                    ImageIO.SaveFolder(images!, outPath);
                    ctx.Out.WriteLine($"wrote {n} images to {outPath}");
                }
            }
            return 0;
        });
        return cmd;
    }
}

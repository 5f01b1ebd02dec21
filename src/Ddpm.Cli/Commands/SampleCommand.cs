using System.CommandLine;
using Ddpm.Diffusion;
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
        var sampler = new Option<string>("--sampler") { Description = "ddpm (ancestral), ddim or dpm-solver (DPM-Solver++ 2M)", DefaultValueFactory = _ => "ddpm" };
        var steps = new Option<int?>("--sample-steps") { Description = "Denoising steps, evenly spaced over T (default: T for ddpm, 50 for ddim, 20 for dpm-solver)" };
        var timesteps = new Option<string>("--timestep-list") { Description = "Explicit 0-based timesteps to visit, comma-separated (e.g. 0,250,500,750,999); instead of --sample-steps" };
        var spacing = new Option<string>("--spacing") { Description = "How --sample-steps are spread over T: even (in t; default for ddpm and ddim) or logsnr (even in log-SNR; default for dpm-solver)" };
        var eta = new Option<double?>("--eta") { Description = "DDIM's eta in [0, 1]: 0 deterministic (default), 1 the ancestral sampler's variance" };
        var threshold = SamplerCliOptions.Threshold();
        var dynamicMax = SamplerCliOptions.DynamicMax();
        var noClip = new Option<bool>("--no-clip") { Description = "Do not clip the predicted x_0 (the same as --threshold none)" };
        var noProgress = CommonOptions.NoProgress();
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var cmd = new Command("sample", "Generate images with DDPM's ancestral sampler (all T steps or respaced), DDIM or DPM-Solver++.")
        {
            checkpoint, count, output, seed, batch, columns, noEma, sampler, steps, spacing, timesteps, eta, threshold, dynamicMax, noClip,
            noProgress, device, threads,
            SettingOptions.Renamed("--steps", "--sample-steps", "the denoising steps; --steps is train's optimizer steps"),
            SettingOptions.Renamed("--timesteps", "--timestep-list", "the explicit list; --timesteps is T elsewhere"),
        };
        cmd.SetAction(parse =>
        {
            var kind = SamplerSettings.ParseKind(parse.GetValue(sampler)!);
            var options = SamplerCliOptions.Build(parse.GetValue(threshold), parse.GetValue(noClip), parse.GetValue(dynamicMax));
            var n = parse.GetValue(count);
            var outPath = parse.GetValue(output)!;
            if (parse.GetValue(columns) < 0) throw new DdpmException($"--columns {parse.GetValue(columns)}: must not be negative");
            var dev = CommonOptions.Setup(parse.GetValue(device)!, parse.GetValue(threads));
            using var pipe = DdpmPipeline.Load(parse.GetValue(checkpoint)!, dev, useEma: !parse.GetValue(noEma));
            int T = pipe.Diffusion.Timesteps;
            var list = parse.GetValue(timesteps);
            var settings = new SamplerSettings
            {
                Kind = kind,
                Steps = parse.GetValue(steps),
                Spacing = parse.GetValue(spacing) is string sp ? SamplerSettings.ParseSpacing(sp) : null,
                Timesteps = list is null ? null : TimestepSelection.Parse(list, T),
                Eta = parse.GetValue(eta) ?? 0.0,
            };
            string description = settings.Describe(pipe.Diffusion.Schedule); // checks the settings before any work
            ctx.Out.WriteLine($"checkpoint {pipe.CheckpointDir} (step {pipe.Step}), {n} images, {description}, threshold {options.Threshold.ToString().ToLowerInvariant()}, device {dev}");
            var token = ctx.CancelOnCtrlC();
            TorchSharp.torch.Tensor? images = null;
            ProgressView.RunSampling(ctx, parse.GetValue(noProgress), "sampling", progress =>
                images = pipe.Sample(n, parse.GetValue(seed), settings, options, parse.GetValue(batch), progress, token));
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

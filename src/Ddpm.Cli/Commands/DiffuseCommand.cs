using System.CommandLine;
using Ddpm.Configuration;
using Ddpm.Data;
using Ddpm.Diffusion;
using Ddpm.Figures;
using Ddpm.Imaging;
using Ddpm.Pipelines;
using Ddpm.Runs;
using Ddpm.Sampling;
using Ddpm.Training;

namespace Ddpm.Cli.Commands;

/// <summary><c>ddpm diffuse</c>: the pictures of the forward process and of a trained model's reverse process.</summary>
public static class DiffuseCommand
{
    public static Command Create(CliContext ctx)
    {
        var data = new Option<string>("--data") { Description = "Images for the forward process (default: the bundled MNIST digits)" };
        var checkpoint = new Option<string>("--checkpoint", "-c") { Description = "A trained run or checkpoint: also draws its reverse process, with its schedule" };
        var count = new Option<int>("--count", "-n") { Description = "Rows (images)", DefaultValueFactory = _ => 4 };
        var frames = new Option<int>("--frames") { Description = "Columns (timesteps shown)", DefaultValueFactory = _ => 11 };
        var outDir = new Option<string>("--output", "-o", "--output-dir") { Description = "Folder for forward.png and reverse.png", DefaultValueFactory = _ => "." };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 0, Description = "Seed of the noise" };
        var schedule = new Option<string>("--schedule") { Description = "Schedule when no checkpoint is given: linear, cosine or sigmoid", DefaultValueFactory = _ => "linear" };
        var timesteps = new Option<int>("--timesteps") { Description = "T when no checkpoint is given", DefaultValueFactory = _ => 1000 };
        var noProgress = CommonOptions.NoProgress();
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var cmd = new Command("diffuse", "Draw the forward process (data to noise) and, with --checkpoint, the reverse process (noise to data).")
        {
            data, checkpoint, count, frames, outDir, seed, schedule, timesteps, noProgress, device, threads,
        };
        cmd.SetAction(parse =>
        {
            var dev = CommonOptions.Setup(parse.GetValue(device)!, parse.GetValue(threads));
            int n = parse.GetValue(count), f = parse.GetValue(frames);
            if (n < 1) throw new DdpmException($"--count {n}: must be at least 1");
            var dir = parse.GetValue(outDir)!;
            var ckpt = parse.GetValue(checkpoint);
            using var pipe = ckpt is null ? null : DdpmPipeline.Load(ckpt, dev);
            var config = pipe?.Config ?? new TrainConfig { Schedule = SettingNames.Schedule.Parse(parse.GetValue(schedule)), Timesteps = parse.GetValue(timesteps) };
            // Default images: the checkpoint's own training data when it is still there, else the bundled digits.
            var trained = pipe?.Config.Data;
            var dataPath = parse.GetValue(data)
                ?? (trained is not null && (File.Exists(trained) || Directory.Exists(trained)) ? trained : CommonOptions.BundledData);
            using var diffusion = pipe is null ? DiffusionFactory.Diffusion(config) : null;
            var diff = pipe?.Diffusion ?? diffusion!;

            using var dataset = DatasetLoader.Load(dataPath, pipe?.Config.ImageSize, pipe?.Config.Channels, maxCount: n);
            using var forward = DiffusionFigures.ForwardProcess(diff, dataset.Images, f, parse.GetValue(seed));
            var forwardPath = Path.Combine(dir, "forward.png");
            ImageIO.SaveGrid(forward, forwardPath, columns: DiffusionFigures.FrameTimesteps(diff.Timesteps, f).Length, scale: Trainer.GridScale(dataset.Height));
            ctx.Out.WriteLine($"wrote {forwardPath}: {n} images, x_t at t = {string.Join(", ", DiffusionFigures.FrameTimesteps(diff.Timesteps, f))} (0-based; column 0 is the data)");

            if (pipe is null) return 0;
            var token = ctx.CancelOnCtrlC();
            int keep = Math.Max(1, (diff.Timesteps - 1) / Math.Max(1, f - 1));
            SampleResult? result = null;
            ProgressView.RunSampling(ctx, parse.GetValue(noProgress), "reverse process", progress =>
                result = new AncestralSampler().Sample(diff, pipe.Model, pipe.ImageShape(n), SamplingRun.Seeded(parse.GetValue(seed)) with { KeepEvery = keep },
                    dev, new Ddpm.Runtime.SyncProgress<int>(done => progress.Report((done, diff.Timesteps))), token));
            using (result)
            using (var reverse = DiffusionFigures.ReverseProcess(result!.Trajectory, f))
            {
                var reversePath = Path.Combine(dir, "reverse.png");
                int cols = (int)(reverse.shape[0] / (2 * n));
                ImageIO.SaveGrid(reverse, reversePath, columns: cols, scale: Trainer.GridScale(pipe.Config.Model!.ImageSize));
                ctx.Out.WriteLine($"wrote {reversePath}: for each image, a row of x_t from noise to sample and a row of the predicted x_0");
            }
            return 0;
        });
        return cmd;
    }
}

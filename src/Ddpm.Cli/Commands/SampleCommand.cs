using System.CommandLine;
using Ddpm.Distributed;
using Ddpm.Runtime;
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
        var shard = ShardOption.Create("Generate only shard INDEX of COUNT (0-based; batch b belongs to shard b mod COUNT) into the --output folder, under the names the unsharded command gives them");
        var sampler = new SamplerCliOptions();
        var noProgress = CommonOptions.NoProgress();
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var cmd = new Command("sample", "Generate images with DDPM's ancestral sampler (all T steps or respaced), DDIM or DPM-Solver++.")
        {
            checkpoint, count, output, seed, batch, columns, noEma, shard,
        };
        sampler.AddTo(cmd);
        foreach (var o in new Option[] { noProgress, device, threads }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var chosen = sampler.Build(parse);
            var n = parse.GetValue(count);
            var outPath = parse.GetValue(output)!;
            if (parse.GetValue(columns) < 0) throw new DdpmException($"--columns {parse.GetValue(columns)}: must not be negative");
            // Everything the user gave is checked before the header line and before the checkpoint is loaded.
            DdpmPipeline.CheckSampleCounts(n, parse.GetValue(batch));
            bool grid = IsGridPath(outPath);
            // Under mpirun each process generates the shard of its rank; rank 0 alone prints.
            var (part, comm) = ShardOption.ParseOrFromMpi(parse, shard);
            var view = comm is null || comm.Rank == 0 ? ctx : new CliContext(TextWriter.Null, ctx.Err);
            if (grid && part is not null)
                throw new DdpmException($"{(comm is null ? "--shard" : "mpirun")} with --output {outPath}: a grid cannot be split; give a folder, where each shard writes its images under their global numbers");
            var dev = CommonOptions.Setup(comm is null ? parse.GetValue(device)! : DeviceSpec.Parse(parse.GetValue(device)).ForLocalRank(comm.LocalRank, TorchSharp.torch.cuda.is_available()).ToString(),
                comm is null ? parse.GetValue(threads) : MpiEnvironment.ThreadsPerProcess(parse.GetValue(threads)));
            using var pipe = DdpmPipeline.Load(parse.GetValue(checkpoint)!, dev, useEma: !parse.GetValue(noEma));
            string description = SamplerCliOptions.Describe(chosen, pipe.Diffusion.Schedule); // checks the settings before any work
            int batchSize = parse.GetValue(batch);
            string which = part is null ? $"{n} images" : $"shard {part}: {part.ImagesInBatches(n, batchSize)} of {n} images";
            view.Out.WriteLine($"checkpoint {pipe.CheckpointDir} (step {pipe.Step}), {which}{(comm is null ? "" : $" on each of {comm.Size} processes")}, {description}, device {dev}");
            var token = view.CancelOnCtrlC();
            if (grid)
            {
                TorchSharp.torch.Tensor? images = null;
                ProgressView.RunSampling(ctx, parse.GetValue(noProgress), "sampling", progress =>
                    images = pipe.Sample(n, parse.GetValue(seed), chosen, batchSize, progress, token));
                using (images)
                    ImageIO.SaveGrid(images!, outPath, columns: parse.GetValue(columns), scale: Trainer.GridScale(pipe.Config.Model!.ImageSize));
                ctx.Out.WriteLine($"wrote grid {outPath}");
                return 0;
            }
            // A folder is written batch by batch, each image under its global number (a shard's part of the same names).
            Directory.CreateDirectory(outPath);
            int written = 0;
            ProgressView.RunSampling(view, parse.GetValue(noProgress) || comm is not null, "sampling", progress =>
            {
                foreach (var b in pipe.SampleBatches(n, parse.GetValue(seed), part ?? Shard.Whole, chosen, batchSize, progress, token))
                    using (b)
                    {
                        ImageIO.SaveFolder(b.Images, outPath, startIndex: b.FirstIndex, totalCount: n);
                        written += (int)b.Images.shape[0];
                    }
            });
            if (comm is not null)
            {
                var total = new double[] { written };
                comm.AllReduceSum(total); // and so every process has finished writing
                view.Out.WriteLine($"{comm.Size} processes wrote {total[0]} of {n} images to {outPath}");
                return 0;
            }
            ctx.Out.WriteLine(part is null ? $"wrote {n} images to {outPath}" : $"shard {part}: wrote {written} of {n} images to {outPath}");
            return 0;
        });
        return cmd;
    }

    /// <summary>Image extensions other than .png: a grid is written only as PNG, and a folder named like an image is a mistake.</summary>
    private static readonly string[] OtherImageExtensions = { ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".avif", ".heic", ".ico" };

    /// <summary>
    /// Whether --output names one grid (a .png file) rather than a folder of PNGs (a path without an image extension);
    /// an empty path and other image extensions are refused.
    /// </summary>
    internal static bool IsGridPath(string output)
    {
        if (string.IsNullOrWhiteSpace(output))
            throw new DdpmException("--output is empty: give grid.png for one grid, or a folder for one PNG per image");
        string ext = Path.GetExtension(output.TrimEnd('/', Path.DirectorySeparatorChar));
        if (ext.Equals(".png", StringComparison.OrdinalIgnoreCase) && !EndsInSeparator(output)) return true;
        if (OtherImageExtensions.Contains(ext, StringComparer.OrdinalIgnoreCase))
            throw new DdpmException($"--output {output}: sample writes PNG only; give a .png file for one grid, or a folder without an image extension");
        return false;
    }

    private static bool EndsInSeparator(string path) => path.EndsWith('/') || path.EndsWith(Path.DirectorySeparatorChar);
}

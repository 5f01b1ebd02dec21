using System.CommandLine;
using System.Globalization;
using Ddpm.IO;
using Ddpm.Pipelines;

namespace Ddpm.Cli.Commands;

/// <summary><c>ddpm nll</c>: the variational bound of images under a checkpoint, in bits/dim.</summary>
public static class NllCommand
{
    public static Command Create(CliContext ctx)
    {
        var checkpoint = new Option<string>("--checkpoint", "-c") { Description = "Run folder, checkpoint folder, or a .safetensors weights file inside one", Required = true };
        var data = new Option<string>("--data") { Description = "Images to evaluate: an IDX file or image folder (default: the run's training data)" };
        var count = new Option<int>("--count", "-n") { Description = "Evaluate the first N images", DefaultValueFactory = _ => 64 };
        var batch = new Option<int>("--batch-size") { Description = "Images evaluated at once", DefaultValueFactory = _ => 64 };
        var seed = new Option<long>("--seed") { Description = "Seed of the forward-process noise (batch b uses seed + b)", DefaultValueFactory = _ => 0 };
        var noEma = new Option<bool>("--no-ema") { Description = "Use the raw weights instead of the EMA weights" };
        var noClip = new Option<bool>("--no-clip") { Description = "Do not clip the predicted x_0 to [-1, 1] (the original evaluation clips)" };
        var output = new Option<string>("--output", "-o") { Description = "JSON report with the terms per timestep and per image", DefaultValueFactory = _ => "nll.json" };
        var noProgress = CommonOptions.NoProgress();
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var cmd = new Command("nll", "Variational bound (negative log-likelihood) in bits/dim: prior + KL terms + decoder, as Ho et al. 2020.")
        {
            checkpoint, data, count, batch, seed, noEma, noClip, output, noProgress, device, threads,
        };
        cmd.SetAction(parse =>
        {
            var dev = CommonOptions.Setup(parse.GetValue(device)!, parse.GetValue(threads));
            int n = parse.GetValue(count);
            int batchSize = parse.GetValue(batch);
            if (n < 1) throw new DdpmException($"--count {n}: must be at least 1");
            if (batchSize < 1) throw new DdpmException($"--batch-size {batchSize}: must be at least 1");
            bool ema = !parse.GetValue(noEma);
            using var pipe = DdpmPipeline.Load(parse.GetValue(checkpoint)!, dev, useEma: ema);
            using var images = LikelihoodEvaluator.LoadData(pipe, parse.GetValue(data), n);
            ctx.Out.WriteLine($"checkpoint {pipe.CheckpointDir} (step {pipe.Step}), {images.Count} images from {images.Source}, T = {pipe.Diffusion.Timesteps}, device {dev}");
            var token = ctx.CancelOnCtrlC();
            NllReport? report = null;
            ProgressView.RunSampling(ctx, parse.GetValue(noProgress), "bound", progress =>
                report = LikelihoodEvaluator.Evaluate(pipe, images.Images, batchSize, parse.GetValue(seed), !parse.GetValue(noClip), progress, token),
                unit: "timesteps");
            report = report! with { Data = images.Source, Ema = ema };
            ctx.Out.WriteLine($"bits/dim {Format(report.BitsPerDim)}  (N = {report.Count}, T = {report.Timesteps}, {report.Variance})");
            ctx.Out.WriteLine($"  prior   L_T          {Format(report.Prior)}");
            ctx.Out.WriteLine($"  KL sum  L_1..L_T-1   {Format(report.Kl)}");
            ctx.Out.WriteLine($"  decoder L_0          {Format(report.Decoder)}");
            var outPath = parse.GetValue(output)!;
            AtomicFile.WriteAllText(outPath, report.ToJson());
            ctx.Out.WriteLine($"wrote {outPath}");
            return 0;
        });
        return cmd;
    }

    private static string Format(MeanAndError m) =>
        m.StandardError is double se
            ? $"{Number(m.Mean)} ± {Number(se)}"
            : $"{Number(m.Mean)} (one image: no standard error)";

    /// <summary>Four decimals, or four significant digits for values too small to show that way (the prior term).</summary>
    private static string Number(double v) =>
        v != 0 && Math.Abs(v) < 1e-3 ? v.ToString("0.000e+00", CultureInfo.InvariantCulture) : v.ToString("F4", CultureInfo.InvariantCulture);
}

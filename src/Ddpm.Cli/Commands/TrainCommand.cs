using System.CommandLine;
using System.CommandLine.Parsing;
using Ddpm.Metrics.Evaluation;
using Ddpm.Runs;
using Ddpm.Training;

namespace Ddpm.Cli.Commands;

/// <summary><c>ddpm train</c>: every TrainConfig setting as an option, or from --config FILE.json.</summary>
public static class TrainCommand
{

    private sealed record Binding(Option Option, Action<TrainConfig, ParseResult> Apply, bool AllowedOnResume);

    public static Command Create(CliContext ctx)
    {
        var d = new TrainConfig();
        var cmd = new Command("train", "Train a DDPM. With no options: the CPU preset on the bundled 10,000 MNIST digits.");
        var bindings = new List<Binding>();

        void Bind<T>(string name, string description, Action<TrainConfig, T> set, bool onResume = false, string? alias = null)
        {
            var opt = alias is null ? new Option<T>(name) : new Option<T>(name, alias);
            opt.Description = description;
            cmd.Options.Add(opt);
            bindings.Add(new Binding(opt, (c, r) => set(c, r.GetValue(opt)!), onResume));
        }

        Bind<string>("--data", "Training data: an IDX file (raw or .gz) or a folder of PNG/JPEG images (default: the bundled MNIST digits)", (c, v) => c.Data = v);
        Bind<int>("--image-size", "Resize images to this size (default: the data's)", (c, v) => c.ImageSize = v);
        Bind<int>("--channels", "1 (grey) or 3 (RGB) (default: the data's)", (c, v) => c.Channels = v);
        Bind<int>("--max-images", "Use at most this many images", (c, v) => c.MaxImages = v);
        Bind<bool>("--random-flip", "Random horizontal flips", (c, v) => c.RandomFlip = v);
        Bind<string>("--preset", $"Network preset (default {d.Preset}; see ddpm info)", (c, v) => c.Preset = v);
        Bind<double>("--dropout", "Dropout of the residual blocks (default: the preset's)", (c, v) => c.Dropout = v);
        Bind<string>("--schedule", $"Noise schedule: linear, cosine or sigmoid (default {d.Schedule})", (c, v) => c.Schedule = v);
        Bind<int>("--timesteps", $"Diffusion steps T (default {d.Timesteps})", (c, v) => c.Timesteps = v);
        Bind<double>("--beta-start", $"Linear schedule's first beta (default {d.BetaStart})", (c, v) => c.BetaStart = v);
        Bind<double>("--beta-end", $"Linear schedule's last beta (default {d.BetaEnd})", (c, v) => c.BetaEnd = v);
        Bind<string>("--variance", $"Reverse-process variance: fixedlarge, fixedsmall, learned or learned-range (default {d.Variance})", (c, v) => c.Variance = v);
        Bind<string>("--prediction", $"What the network predicts: eps, x0, v or mu (default {d.Prediction})", (c, v) => c.Prediction = v);
        Bind<string>("--loss", $"Training loss: simple, vlb or hybrid (simple + --vlb-weight x vlb) (default {d.Loss})", (c, v) => c.Loss = v);
        Bind<double>("--vlb-weight", $"lambda of the hybrid loss (default {d.VlbWeight})", (c, v) => c.VlbWeight = v);
        Bind<string>("--timestep-sampler", $"How t is drawn: uniform or importance (loss-aware) (default {d.TimestepSampler})", (c, v) => c.TimestepSampler = v);
        Bind<int>("--batch-size", $"Batch size (default {d.BatchSize})", (c, v) => c.BatchSize = v);
        Bind<long>("--steps", $"Optimizer steps (default {d.Steps}); with --resume, the new total", (c, v) => c.Steps = v, onResume: true);
        Bind<double>("--lr", $"Adam learning rate (default {d.LearningRate})", (c, v) => c.LearningRate = v);
        Bind<double>("--adam-eps", $"Adam epsilon (default {d.AdamEps})", (c, v) => c.AdamEps = v);
        Bind<long>("--warmup", $"Linear learning-rate warm-up steps (default {d.WarmupSteps})", (c, v) => c.WarmupSteps = v);
        Bind<double>("--grad-clip", $"Global gradient-norm clip, 0 = off (default {d.GradClip})", (c, v) => c.GradClip = v);
        Bind<double>("--ema-decay", $"EMA decay (the cap, with warm-up) (default {d.EmaDecay})", (c, v) => c.EmaDecay = v);
        Bind<bool>("--no-ema-warmup", "Use the fixed EMA decay from the first step", (c, v) => c.EmaWarmup = !v);
        Bind<double>("--ema-power", $"EMA warm-up power (default {d.EmaPower})", (c, v) => c.EmaPower = v);
        Bind<long>("--seed", $"Seed of everything random (default {d.Seed})", (c, v) => c.Seed = v);
        Bind<long>("--log-every", $"Metrics line every N steps (default {d.LogEvery})", (c, v) => c.LogEvery = v, onResume: true);
        Bind<long>("--sample-every", "Sample grid from the EMA weights every N steps (default 0: only at the end)", (c, v) => c.SampleEvery = v, onResume: true);
        Bind<string>("--sample-sampler", $"Sampler of the grids: ddpm (all T steps), ddim or dpm-solver (default {d.SampleSampler})", (c, v) => c.SampleSampler = v, onResume: true);
        Bind<int>("--sample-steps", "Steps of the grid sampler (default 0: its default, T for ddpm, 20 for dpm-solver)", (c, v) => c.SampleSteps = v, onResume: true);
        Bind<int>("--sample-count", $"Images in each sample grid (default {d.SampleCount})", (c, v) => c.SampleCount = v, onResume: true);
        Bind<long>("--checkpoint-every", $"Checkpoint every N steps, 0 = only at the end (default {d.CheckpointEvery})", (c, v) => c.CheckpointEvery = v, onResume: true);
        Bind<int>("--keep-checkpoints", $"Checkpoints kept (default {d.KeepCheckpoints})", (c, v) => c.KeepCheckpoints = v, onResume: true);
        Bind<long>("--eval-every", "Score the EMA model every N steps (and at the end) and keep the best checkpoint in checkpoints/best (default 0: never)", (c, v) => c.EvalEvery = v, onResume: true);
        Bind<int>("--eval-count", $"Samples per evaluation (default {d.EvalCount})", (c, v) => c.EvalCount = v, onResume: true);
        Bind<int>("--eval-real-count", $"Training images the samples are compared with, at least 2x --eval-count (default {d.EvalRealCount})", (c, v) => c.EvalRealCount = v, onResume: true);
        Bind<string>("--eval-classifier", "Offline distance: auto, mnist, fashion-mnist, none, or a classifier weights file (default auto)", (c, v) => c.EvalClassifier = v, onResume: true);
        Bind<string>("--eval-sampler", $"Sampler of the evaluation samples: ddpm, ddim or dpm-solver (default {d.EvalSampler})", (c, v) => c.EvalSampler = v, onResume: true);
        Bind<int>("--eval-steps", "Steps of the evaluation sampler (default 0: its default, 20 for dpm-solver)", (c, v) => c.EvalSteps = v, onResume: true);
        Bind<string>("--inception-weights", "FID Inception weights (pt_inception-2015-12-05-6726825d.pth); FID is evaluated too when given", (c, v) => c.InceptionWeights = v, onResume: true);
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        cmd.Options.Add(device);
        cmd.Options.Add(threads);
        var recipe = new Option<string>("--recipe") { Description = "Start from a paper's diffusion settings: ho2020 (eps, fixedlarge, linear, simple) or improved (cosine, learned-range, hybrid); explicit options override" };
        cmd.Options.Add(recipe);
        var config = new Option<string>("--config") { Description = "Read settings from a JSON file (as written to a run's config.json); options given on the command line win" };
        var runDir = new Option<string>("--run-dir", "-o") { Description = "Run folder (default: runs/run-YYYYMMDD-HHMMSS)" };
        var resume = new Option<string>("--resume") { Description = "Continue the run in this folder from its latest checkpoint" };
        var noProgress = CommonOptions.NoProgress();
        cmd.Options.Add(config);
        cmd.Options.Add(runDir);
        cmd.Options.Add(resume);
        cmd.Options.Add(noProgress);

        cmd.SetAction(parse =>
        {
            bool Given(Option o) => parse.GetResult(o) is { Implicit: false };
            var resumeDir = parse.GetValue(resume);
            var deviceName = parse.GetValue(device) ?? "auto";
            int threadCount = parse.GetValue(threads);
            Trainer trainer;
            if (resumeDir is not null)
            {
                var bad = bindings.FirstOrDefault(b => !b.AllowedOnResume && Given(b.Option));
                if (bad is not null) throw new DdpmException($"{bad.Option.Name} cannot change when resuming (the run keeps its settings)");
                if (Given(config) || Given(runDir) || Given(recipe)) throw new DdpmException("--config, --recipe and --run-dir cannot be combined with --resume");
                CommonOptions.Setup(deviceName, threadCount);
                trainer = Trainer.Resume(resumeDir, adjust: c =>
                {
                    foreach (var b in bindings.Where(b => Given(b.Option))) b.Apply(c, parse);
                    if (Given(device)) c.Device = deviceName;
                    c.Threads = threadCount;
                });
                ctx.Out.WriteLine($"resuming {resumeDir} at step {trainer.Step} of {trainer.Config.Steps}");
                if (trainer.TornMetricsLinesDropped > 0)
                    ctx.Out.WriteLine($"note: dropped {trainer.TornMetricsLinesDropped} torn line(s) of {Path.Combine(resumeDir, Ddpm.Runs.MetricsLog.FileName)} (cut by a crash or a full disk)");
            }
            else
            {
                var c = parse.GetValue(config) is string file ? TrainConfig.Load(file) : new TrainConfig();
                if (parse.GetValue(recipe) is string recipeName) TrainRecipes.Apply(c, recipeName);
                foreach (var b in bindings.Where(b => Given(b.Option))) b.Apply(c, parse);
                if (string.IsNullOrEmpty(c.Data)) c.Data = CommonOptions.BundledData;
                if (Given(device) || parse.GetValue(config) is null) c.Device = deviceName;
                if (Given(threads) || parse.GetValue(config) is null) c.Threads = threadCount;
                CommonOptions.Setup(c.Device, c.Threads);
                var dir = parse.GetValue(runDir) ?? Path.Combine("runs", $"run-{DateTime.Now:yyyyMMdd-HHmmss}");
                trainer = Trainer.Start(c, dir);
                ctx.Out.WriteLine($"run folder: {dir}");
                if (trainer.StartedOverAnUnfinishedRun)
                    ctx.Out.WriteLine($"note: {dir} held a run that stopped before its first checkpoint; starting it afresh");
            }
            using (trainer)
            {
                // The evaluator of --eval-every comes from the metrics layer; the trainer only calls it.
                if (trainer.Config.EvalEvery > 0) trainer.Evaluator = EvalMetrics.CreateEvaluator(trainer.Config, trainer.Data, trainer.Device);
                var m = trainer.Config.Model!;
                ctx.Out.WriteLine($"data: {trainer.Data.Count} images {trainer.Data.Channels}x{trainer.Data.Height}x{trainer.Data.Width} from {trainer.Data.Source}");
                ctx.Out.WriteLine($"model: {trainer.Config.Preset}, {Ddpm.Models.ModelStats.CountParameters(trainer.Model):N0} parameters, device {trainer.Device}");
                var cfg = trainer.Config;
                ctx.Out.WriteLine($"diffusion: {cfg.Schedule} schedule, T = {cfg.Timesteps}, predicts {cfg.Prediction}, variance {cfg.Variance}, loss {cfg.Loss}, t {cfg.TimestepSampler}{(cfg.Recipe is null ? "" : $" (recipe {cfg.Recipe})")}");
                var token = ctx.CancelOnCtrlC("finishing the step and saving a checkpoint");
                var result = ProgressView.RunTraining(ctx, parse.GetValue(noProgress), trainer.Config.LogEvery,
                    progress => trainer.Run(progress, token));
                ctx.Out.WriteLine(result.Interrupted
                    ? $"interrupted at step {result.Step}: checkpoint {result.CheckpointDir}; continue with: ddpm train --resume {trainer.RunDir}"
                    : $"done: {result.Step} steps, final loss {result.LastLoss:F4}; checkpoint {result.CheckpointDir}; samples {result.FinalGrid}");
                return result.Interrupted ? ctx.InterruptedExitCode : 0;
            }
        });
        return cmd;
    }
}

using Ddpm.Runtime;
using System.CommandLine;
using System.CommandLine.Parsing;
using Ddpm.Metrics.Evaluation;
using Ddpm.Runs;
using Ddpm.Configuration;
using Ddpm.Training;
using Ddpm.Distributed;

namespace Ddpm.Cli.Commands;

/// <summary><c>ddpm train</c>: every TrainConfig setting as an option (see <see cref="SettingOptions"/>), or from --config FILE.json.</summary>
public static class TrainCommand
{

    public static Command Create(CliContext ctx)
    {
        var cmd = new Command("train", "Train a DDPM. With no options: the CPU preset on the bundled 10,000 MNIST digits.");
        var bindings = SettingOptions.ForTrainConfig();
        foreach (var b in bindings) cmd.Options.Add(b.Option);
        Option Of(string key) => bindings.Single(b => b.Setting.Key == key).Option;
        var recipe = Of("recipe");
        var initFrom = Of("init_from");
        var data = Of("data");
        var device = Of("device");
        var threads = (Option<int>)Of("threads");
        var noEmaWarmup = new Option<bool>("--no-ema-warmup") { Description = "The same as --ema-warmup false (kept from earlier versions)" };
        var config = new Option<string>("--config") { Description = "Read settings from a JSON file (as written to a run's config.json); options given on the command line win" };
        var output = new Option<string>("--output", "-o", "--run-dir") { Description = "Run folder (default: runs/run-YYYYMMDD-HHMMSS)" };
        var resume = new Option<string>("--resume") { Description = "Continue the run in this folder from its latest checkpoint" };
        var noProgress = CommonOptions.NoProgress();
        foreach (var o in new Option[] { noEmaWarmup, config, output, resume, noProgress }) cmd.Options.Add(o);

        cmd.SetAction(parse =>
        {
            // Under mpirun or srun: one of several data-parallel processes; rank 0 alone prints and writes.
            var comm = MpiSession.Communicator;
            var view = comm is null || comm.Rank == 0 ? ctx : new CliContext(TextWriter.Null, ctx.Err);
            int Threads(int given) => comm is null ? given : MpiEnvironment.ThreadsPerProcess(given);
            bool Given(Option o) => parse.GetResult(o) is { Implicit: false };
            string Spelling(Option o) => parse.GetResult(o)?.IdentifierToken?.Value ?? o.Name;
            void ApplyGiven(TrainConfig c)
            {
                foreach (var b in bindings.Where(b => b.Option != recipe && Given(b.Option))) b.Apply(c, parse);
                if (parse.GetValue(noEmaWarmup)) c.EmaWarmup = false;
            }
            var resumeDir = parse.GetValue(resume);
            Trainer trainer;
            if (resumeDir is not null)
            {
                // A run whose checkpoint names no data (a converted checkpoint), or names data that is gone (a deleted
                // clone's bundled copy, a moved folder), takes it now; any other keeps its own.
                var storedData = StoredData(resumeDir);
                bool dataMayChange = string.IsNullOrWhiteSpace(storedData) || !(File.Exists(storedData) || Directory.Exists(storedData));
                var bad = bindings.FirstOrDefault(b => !b.Setting.Resumable && Given(b.Option) && !(b.Option == data && dataMayChange));
                if (bad is not null) throw new DdpmException($"{Spelling(bad.Option)} cannot change when resuming (the run keeps its settings)");
                if (!string.IsNullOrWhiteSpace(storedData) && dataMayChange && !Given(data))
                    throw new DdpmException($"the run's data {storedData} is not there (moved or deleted): give its new place with --data");
                if (Given(noEmaWarmup)) throw new DdpmException("--no-ema-warmup cannot change when resuming (the run keeps its settings)");
                if (Given(config) || Given(output)) throw new DdpmException("--config and --output cannot be combined with --resume");
                int threadCount = parse.GetValue(threads);
                CommonOptions.Setup(parse.GetValue((Option<string>)device) ?? "auto", Threads(threadCount));
                void Adjust(TrainConfig c)
                {
                    ApplyGiven(c);
                    if (Given(threads)) c.Threads = threadCount;
                    if (comm is not null) c.Device = c.Device.ForLocalRank(comm.LocalRank, TorchSharp.torch.cuda.is_available());
                }
                trainer = comm is null ? Trainer.Resume(resumeDir, adjust: Adjust) : Trainer.Resume(resumeDir, comm, adjust: Adjust);
                // The run keeps its thread count unless --threads is given: libtorch's reductions split work by thread,
                // so another count can change the last bits and a resumed run would no longer equal an uninterrupted one.
                TorchRuntime.SetThreads(Threads(trainer.Config.Threads));
                view.Out.WriteLine($"resuming {resumeDir} at step {trainer.Step} of {trainer.Config.Steps}");
                if (Given(data) && !string.IsNullOrWhiteSpace(storedData))
                    view.Out.WriteLine($"data: the run's {storedData} is not there; it trains on {trainer.Config.Data} from now on");
                if (trainer.TornMetricsLinesDropped > 0)
                    view.Out.WriteLine($"note: dropped {trainer.TornMetricsLinesDropped} torn line(s) of {Path.Combine(resumeDir, Ddpm.Runs.MetricsLog.FileName)} (cut by a crash or a full disk)");
            }
            else
            {
                var c = parse.GetValue(config) is string file ? TrainConfig.Load(file) : new TrainConfig();
                if (parse.GetValue((Option<string>)recipe) is string recipeName) TrainRecipes.Apply(c, recipeName);
                if (Given(initFrom)) bindings.Single(b => b.Option == initFrom).Apply(c, parse);
                if (c.InitFrom is not null)
                {
                    // Fine-tuning: the checkpoint fixes the network and, like a recipe, the diffusion settings; options
                    // given explicitly (ApplyGiven below) still win, --dropout among them.
                    var network = new[] { Of("preset"), Of("model") }.FirstOrDefault(Given);
                    if (network is not null)
                        throw new DdpmException($"{Spelling(network)} cannot be combined with {Spelling(initFrom)}: the network comes from the checkpoint");
                    FineTuning.ApplySettings(c);
                }
                ApplyGiven(c);
                if (string.IsNullOrEmpty(c.Data)) c.Data = CommonOptions.BundledData;
                if (comm is not null) c.Device = c.Device.ForLocalRank(comm.LocalRank, TorchSharp.torch.cuda.is_available());
                CommonOptions.Setup(c.Device.ToString(), Threads(c.Threads));
                var dir = parse.GetValue(output) ?? Path.Combine("runs", $"run-{DateTime.Now:yyyyMMdd-HHmmss}");
                if (Trainer.HoldsRun(dir)) throw new DdpmException($"{dir} already holds a run: continue it with --resume {dir}, or choose another --output");
                trainer = comm is null ? Trainer.Start(c, dir) : Trainer.Start(c, dir, comm);
                view.Out.WriteLine($"run folder: {dir}");
                if (trainer.InitializedFrom is { } origin)
                    view.Out.WriteLine($"starting from {origin.Describe()}; new optimizer");
                if (trainer.StartedOverAnUnfinishedRun)
                    view.Out.WriteLine($"note: {dir} held a run that stopped before its first checkpoint; starting it afresh");
            }
            using (trainer)
            {
                // The evaluator of --eval-every comes from the metrics layer (the trainer only calls it). It opens its
                // classifier and Inception weights now, so a wrong path is refused before any training step is spent.
                if (trainer.Config.EvalEvery > 0 && trainer.IsWriter) trainer.Evaluator = EvalMetrics.CreateEvaluator(trainer.Config, trainer.Data, trainer.Device);
                trainer.Evaluated += _ => PlotCommand.Refresh(ctx, trainer.RunDir);
                if (comm is not null)
                {
                    int batch = trainer.Config.BatchSize;
                    view.Out.WriteLine($"data-parallel: {comm.Size} processes ({(comm as MpiCommunicator)?.Library}), each {batch / comm.Size} to {(batch + comm.Size - 1) / comm.Size} of the {batch} images of a step, {TorchSharp.torch.get_num_threads()} thread(s) each");
                }
                var m = trainer.Config.Model!;
                view.Out.WriteLine($"data: {trainer.Data.Count} images {trainer.Data.Channels}x{trainer.Data.Height}x{trainer.Data.Width} from {trainer.Data.Source}");
                view.Out.WriteLine($"model: {(trainer.Config.InitFrom is null ? trainer.Config.Preset : "the network of " + trainer.Config.InitFrom)}, {Ddpm.Models.ModelStats.CountParameters(trainer.Model):N0} parameters, device {trainer.Device}");
                var cfg = trainer.Config;
                view.Out.WriteLine($"diffusion: {SettingNames.Schedule.Name(cfg.Schedule)} schedule, T = {cfg.Timesteps}, predicts {SettingNames.Prediction.Name(cfg.Prediction)}, "
                    + $"variance {SettingNames.Variance.Name(cfg.Variance)}, loss {SettingNames.Loss.Name(cfg.Loss)}, t {SettingNames.TimestepSampler.Name(cfg.TimestepSampler)}{(cfg.Recipe is null ? "" : $" (recipe {cfg.Recipe})")}");
                if (cfg.EvalEvery > 0)
                    view.Out.WriteLine($"evaluation: every {cfg.EvalEvery} steps, classifier {cfg.EvalClassifier.Describe(cfg.Data, trainer.Data.Channels)}");
                var token = view.CancelOnCtrlC("finishing the step and saving a checkpoint");
                var result = ProgressView.RunTraining(view, parse.GetValue(noProgress) || !trainer.IsWriter, trainer.Config.LogEvery,
                    progress => trainer.Run(progress, token));
                if (trainer.Communication is { Steps: > 0 } c)
                    view.Out.WriteLine($"communication: {1000 * c.Seconds / c.Steps:F1} ms per step in the all-reduce (rank 0, waiting for the others included)");
                if (result.TimeLimitReached)
                    view.Out.WriteLine($"time limit: {cfg.MaxMinutes.ToString(System.Globalization.CultureInfo.InvariantCulture)} minutes of training reached at step {result.Step} of {cfg.Steps}; "
                        + $"to train further: ddpm train --resume {trainer.RunDir} --max-minutes M (a larger budget, or 0 for none)");
                view.Out.WriteLine(result.Interrupted
                    ? $"interrupted at step {result.Step}: checkpoint {result.CheckpointDir}; continue with: ddpm train --resume {trainer.RunDir}"
                    : $"done: {result.Step} steps, final loss {result.LastLoss:F4}; checkpoint {result.CheckpointDir}; samples {result.FinalGrid}");
                return result.Interrupted ? view.InterruptedExitCode : 0;
            }
        });
        return cmd;
    }

    /// <summary>
    /// The training data the run's latest checkpoint names: empty for a converted checkpoint, and for a folder that
    /// cannot be read (resuming it then says what is wrong with it).
    /// </summary>
    private static string StoredData(string runDir)
    {
        try
        {
            return CheckpointStore.ReadState(CheckpointStore.Resolve(runDir)).Config.Data ?? "";
        }
        catch (DdpmException)
        {
            return "";
        }
    }
}

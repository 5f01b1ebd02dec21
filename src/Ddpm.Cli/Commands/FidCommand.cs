using System.CommandLine;
using Ddpm.Metrics;
using Ddpm.Metrics.Evaluation;

namespace Ddpm.Cli.Commands;

/// <summary><c>ddpm fid A B</c>: FID (and KID, IS) as pytorch-fid computes it, between folders, data, checkpoints or .npz statistics.</summary>
public static partial class FidCommand
{
    public static Command Create(CliContext ctx)
    {
        var a = new Argument<string>("A") { Description = "Image folder, IDX file, checkpoint (needs --count) or .npz statistics" };
        var b = new Argument<string>("B") { Description = "The same kinds as A" };
        var inception = InceptionOptions.Create();
        var kid = new Option<bool>("--kid") { Description = "Also compute KID (100 subsets of up to 1000; needs images on both sides)" };
        var isc = new Option<bool>("--isc") { Description = "Also compute the Inception Score (10 splits) of each side with images" };
        var floor = new Option<bool>("--floor") { Description = "Also compute FID between two disjoint real sets of A's size (needs 2x as many real images)" };
        var floorData = new Option<string?>("--floor-data") { Description = "Real images for --floor (default: B or A when it holds enough)" };
        var output = new Option<string>("--output", "-o") { Description = "JSON report", DefaultValueFactory = _ => "fid.json" };
        var eval = new EvaluationOptions();
        var sampler = new SamplerChoice();
        var cmd = new Command("fid", "Frechet Inception Distance as pytorch-fid computes it (pool3, 2048 dims by default); lower is better.") { a, b, kid, isc, floor, floorData, output };
        inception.AddTo(cmd);
        eval.AddTo(cmd);
        sampler.AddTo(cmd, eval);
        cmd.SetAction(parse =>
        {
            if (MpiSession.Communicator is not null) return FidUnderMpi(ctx, parse, a, b, inception, eval, output, kid, isc, floor, floorData);
            var device = CommonOptions.Setup(parse.GetValue(eval.Device)!, parse.GetValue(eval.Threads));
            using var sa = eval.Open(parse, parse.GetValue(a)!, device);
            using var sb = eval.Open(parse, parse.GetValue(b)!, device);
            using var extractor = inception.Defer(parse, device, logits: parse.GetValue(isc));
            EvaluationOptions.LoadWhenImagesAreGiven(extractor, sa, sb);
            var options = new DistanceOptions
            {
                Metric = "fid", BatchSize = parse.GetValue(eval.Batch), Kid = parse.GetValue(kid), ClassScores = parse.GetValue(isc),
                Floor = parse.GetValue(floor) || parse.GetValue(floorData) is not null, FloorData = parse.GetValue(floorData),
                Seed = parse.GetValue(eval.Seed),
            };
            var token = ctx.CancelOnCtrlC();
            var report = ProgressView.RunStages(ctx, parse.GetValue(eval.NoProgress), p => DistanceEvaluation.Run(extractor, sa, sb, options, p, token));
            EvaluationOptions.Print(ctx, report, $"FID ({report.Extractor}, {report.Dims} dims)");
            EvaluationOptions.WriteJson(ctx, parse.GetValue(output)!, report.ToJson());
            return 0;
        });
        return cmd;
    }
}

/// <summary><c>ddpm distance A B</c>: the offline Frechet distance in the features of the project's own classifier.</summary>
public static class DistanceCommand
{
    public static Command Create(CliContext ctx)
    {
        var a = new Argument<string>("A") { Description = "Generated side: checkpoint (needs --count), image folder, IDX file or .npz statistics of the same classifier" };
        var b = new Argument<string>("B") { Description = "Real side: IDX file or image folder (also used for the floor), or .npz statistics" };
        var classifier = ClassifierChoice.Option();
        var noFloor = new Option<bool>("--no-floor") { Description = "Skip the real-vs-real floor" };
        var floorData = new Option<string?>("--floor-data") { Description = "Real images for the floor (default: B or A when it holds at least twice A's count)" };
        var output = new Option<string>("--output", "-o") { Description = "JSON report", DefaultValueFactory = _ => "distance.json" };
        var eval = new EvaluationOptions();
        var sampler = new SamplerChoice();
        var cmd = new Command("distance",
            "Offline Frechet distance in the features of the project's MNIST/Fashion-MNIST classifier (NOT FID; comparable only with the same classifier), " +
            "with the class histogram, a score analogue of IS and the real-vs-real floor.") { a, b, classifier, noFloor, floorData, output };
        eval.AddTo(cmd);
        sampler.AddTo(cmd, eval);
        cmd.SetAction(parse =>
        {
            var device = CommonOptions.Setup(parse.GetValue(eval.Device)!, parse.GetValue(eval.Threads));
            using var sa = eval.Open(parse, parse.GetValue(a)!, device);
            using var sb = eval.Open(parse, parse.GetValue(b)!, device);
            using var extractor = ClassifierChoice.Defer(parse.GetValue(classifier)!, device);
            EvaluationOptions.LoadWhenImagesAreGiven(extractor, sa, sb);
            var options = new DistanceOptions
            {
                Metric = "fd_classifier", BatchSize = parse.GetValue(eval.Batch), ClassScores = true,
                Floor = !parse.GetValue(noFloor), FloorData = parse.GetValue(floorData), Seed = parse.GetValue(eval.Seed),
            };
            var token = ctx.CancelOnCtrlC();
            var report = ProgressView.RunStages(ctx, parse.GetValue(eval.NoProgress), p => DistanceEvaluation.Run(extractor, sa, sb, options, p, token));
            EvaluationOptions.Print(ctx, report, $"FD in {report.Extractor} features (offline distance, not FID)");
            EvaluationOptions.WriteJson(ctx, parse.GetValue(output)!, report.ToJson());
            return 0;
        });
        return cmd;
    }
}

/// <summary>
/// <c>ddpm stats SOURCE -o out.npz</c>: reference statistics in pytorch-fid's .npz format; with <c>--shard i/N</c>, the
/// partial sums of one shard of the source; <c>ddpm stats --merge PART... -o out.npz</c> adds every shard's part into
/// the statistics one process would have written.
/// </summary>
public static class StatsCommand
{
    public static Command Create(CliContext ctx)
    {
        var source = new Argument<string?>("SOURCE") { Description = "Image folder, IDX file, or checkpoint (needs --count); none with --merge", Arity = ArgumentArity.ZeroOrOne };
        var output = new Option<string>("--output", "-o") { Description = "The .npz to write (arrays mu and sigma, float64; with --shard the partial sums n, sum, sum_outer)", Required = true };
        var classifier = new Option<string?>("--classifier") { Description = "Statistics of the offline classifier's features (mnist, fashion-mnist or a weights file) instead of Inception's" };
        var shard = ShardOption.Create("Only shard INDEX of COUNT of SOURCE (0-based; block b of --batch-size images of a data set, or sample batch b of --sample-batch-size images of a checkpoint, when b mod COUNT = INDEX): writes its partial sums for --merge");
        var merge = new Option<string[]>("--merge")
        {
            Description = "Add the partial sums of every shard (the .npz files of --shard) into mu and sigma, as one process computes them",
            AllowMultipleArgumentsPerToken = true, HelpName = "PART.npz",
        };
        var inception = InceptionOptions.Create();
        var eval = new EvaluationOptions();
        var sampler = new SamplerChoice();
        var cmd = new Command("stats", "Precompute feature statistics (mu, sigma) of a data set or of a checkpoint's samples, as pytorch-fid's --save-stats does; or one shard's partial sums, and their merge.") { source, output, classifier, shard, merge };
        inception.AddTo(cmd);
        eval.AddTo(cmd);
        sampler.AddTo(cmd, eval);
        cmd.SetAction(parse =>
        {
            var outPath = parse.GetValue(output)!;
            if (!outPath.EndsWith(".npz", StringComparison.OrdinalIgnoreCase)) throw new DdpmException($"--output {outPath}: must end in .npz");
            var parts = parse.GetValue(merge);
            // Under mpirun each process takes the shard of its rank and the partial sums are added by one all-reduce.
            var (part, comm) = parts is { Length: > 0 } ? (ShardOption.Parse(parse, shard), null) : ShardOption.ParseOrFromMpi(parse, shard);
            var say = comm is null || comm.Rank == 0 ? ctx : new CliContext(TextWriter.Null, ctx.Err);
            if (parts is { Length: > 0 })
            {
                if (parse.GetValue(source) is string s) throw new DdpmException($"--merge takes the shards' parts only; {s} is a SOURCE: give one or the other");
                if (part is not null) throw new DdpmException("--merge and --shard: a merge adds every shard's part; give one or the other");
                var sums = parts.Select(FeatureSums.LoadNpz).ToList();
                var merged = FeatureSums.Merge(sums, parts);
                var total = merged.ToStatistics();
                WriteNpz(outPath, total.SaveNpz);
                ctx.Out.WriteLine($"{merged.Extractor}: merged {parts.Length} part(s), statistics of {total.Count} images, {total.Dim} dims");
                ctx.Out.WriteLine($"wrote {outPath}");
                return 0;
            }
            var sourcePath = parse.GetValue(source) ?? throw new DdpmException("stats: give a SOURCE (image folder, IDX file or checkpoint), or --merge PART.npz...");
            var device = comm is null ? CommonOptions.Setup(parse.GetValue(eval.Device)!, parse.GetValue(eval.Threads)) : MpiSetup(parse, eval, comm);
            using var extractor = parse.GetValue(classifier) is string c ? ClassifierChoice.Open(c, device) : inception.Open(parse, device, logits: false);
            using var src = eval.Open(parse, sourcePath, device, part);
            if (src.Kind == ImageSourceKind.Statistics) throw new DdpmException($"{src.Path}: already statistics");
            var token = say.CancelOnCtrlC();
            if (part is not null)
            {
                var sums = src.Count == 0
                    ? FeatureSums.Empty(extractor.FeatureDims, extractor.Name, part, src.SourceCount)
                    : ProgressView.RunStages(say, parse.GetValue(eval.NoProgress) || comm is not null, p =>
                    {
                        using var f = FeatureCollector.Collect(extractor, src, parse.GetValue(eval.Batch),
                            new Runtime.SyncProgress<int>(done => p.Report(("features", done, src.Count))), token);
                        return FeatureSums.FromFeatures(f.Features, extractor.Name, part, src.SourceCount);
                    });
                if (comm is not null)
                {
                    var whole = sums.AllReduce(comm).ToStatistics();
                    if (comm.Rank == 0) WriteNpz(outPath, whole.SaveNpz);
                    comm.Barrier();
                    say.Out.WriteLine($"{extractor.Name}: statistics of {whole.Count} images from {comm.Size} processes, {whole.Dim} dims");
                    say.Out.WriteLine($"wrote {outPath}");
                    return 0;
                }
                WriteNpz(outPath, sums.SaveNpz);
                ctx.Out.WriteLine($"{extractor.Name}: shard {part}: partial sums of {sums.Count} of {src.SourceCount} images, {sums.Dim} dims (merge every shard's part with --merge)");
                ctx.Out.WriteLine($"wrote {outPath}");
                return 0;
            }
            var stats = ProgressView.RunStages(ctx, parse.GetValue(eval.NoProgress), p =>
            {
                using var f = FeatureCollector.Collect(extractor, src, parse.GetValue(eval.Batch),
                    new Runtime.SyncProgress<int>(done => p.Report(("features", done, src.Count))), token);
                return f.Statistics();
            });
            WriteNpz(outPath, stats.SaveNpz);
            ctx.Out.WriteLine($"{extractor.Name}: statistics of {stats.Count} images, {stats.Dim} dims");
            ctx.Out.WriteLine($"wrote {outPath}");
            return 0;
        });
        return cmd;
    }

    /// <summary>The device and threads of one process of an MPI job: cuda:LOCAL_RANK for cuda or auto with CUDA, the cores shared.</summary>
    internal static TorchSharp.torch.Device MpiSetup(System.CommandLine.ParseResult parse, EvaluationOptions eval, Ddpm.Distributed.ICommunicator comm) =>
        CommonOptions.Setup(Ddpm.Runtime.DeviceSpec.Parse(parse.GetValue(eval.Device)).ForLocalRank(comm.LocalRank, TorchSharp.torch.cuda.is_available()).ToString(),
            Ddpm.Distributed.MpiEnvironment.ThreadsPerProcess(parse.GetValue(eval.Threads)));

    private static void WriteNpz(string path, Action<string> save)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        save(path);
    }
}

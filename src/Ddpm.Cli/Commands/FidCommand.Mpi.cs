using System.CommandLine;
using Ddpm.Distributed;
using Ddpm.Metrics;
using Ddpm.Metrics.Evaluation;

namespace Ddpm.Cli.Commands;

/// <summary><c>mpirun -n N ddpm fid A B</c>: each process takes the shard of its rank of every side with images.</summary>
public static partial class FidCommand
{
    /// <summary>
    /// FID over the processes of an MPI job: each side with images (a checkpoint's samples, a folder, an IDX file) is
    /// split by rank as <c>--shard</c> splits it (the same images as one process), each process sums its shard's
    /// features in float64, one all-reduce adds the sums, and rank 0 computes FID from the merged statistics and writes
    /// the report. KID, IS and the floor need every feature in one place and are refused.
    /// </summary>
    private static int FidUnderMpi(CliContext ctx, ParseResult parse, Argument<string> a, Argument<string> b, InceptionOptions inception,
        EvaluationOptions eval, Option<string> output, Option<bool> kid, Option<bool> isc, Option<bool> floor, Option<string?> floorData)
    {
        foreach (var (given, name) in new[] { (parse.GetValue(kid), "--kid"), (parse.GetValue(isc), "--isc"), (parse.GetValue(floor) || parse.GetValue(floorData) is not null, "--floor") })
            if (given) throw new DdpmException($"{name} under mpirun: KID, IS and the floor need every feature in one process; compute them without mpirun");
        var comm = MpiSession.Communicator!;
        var say = comm.Rank == 0 ? ctx : new CliContext(TextWriter.Null, ctx.Err);
        var device = StatsCommand.MpiSetup(parse, eval, comm);
        var shard = new Shard(comm.Rank, comm.Size);
        using var extractor = inception.Open(parse, device, logits: false);
        var token = say.CancelOnCtrlC();
        var sides = new List<StatisticsSource>();
        foreach (var path in new[] { parse.GetValue(a)!, parse.GetValue(b)! })
        {
            using var src = eval.Open(parse, path, device, shard);
            if (src is StatisticsSource stats)
            {
                sides.Add(new StatisticsSource(path, stats.Statistics));
                continue;
            }
            var sums = src.Count == 0
                ? FeatureSums.Empty(extractor.FeatureDims, extractor.Name, shard, src.SourceCount)
                : ProgressView.RunStages(say, true, p =>
                {
                    using var f = FeatureCollector.Collect(extractor, src, parse.GetValue(eval.Batch),
                        new Runtime.SyncProgress<int>(done => p.Report(($"features of {path}", done, src.Count))), token);
                    return FeatureSums.FromFeatures(f.Features, extractor.Name, shard, src.SourceCount);
                });
            sides.Add(new StatisticsSource(path, sums.AllReduce(comm).ToStatistics()));
        }
        if (comm.Rank == 0)
        {
            var options = new DistanceOptions { Metric = "fid", BatchSize = parse.GetValue(eval.Batch), Seed = parse.GetValue(eval.Seed) };
            var report = DistanceEvaluation.Run(extractor, sides[0], sides[1], options, null, token);
            EvaluationOptions.Print(say, report, $"FID ({report.Extractor}, {report.Dims} dims; statistics merged from {comm.Size} processes)");
            EvaluationOptions.WriteJson(say, parse.GetValue(output)!, report.ToJson());
        }
        comm.Barrier();
        return 0;
    }
}

using System.CommandLine;
using Ddpm.Configuration;
using Ddpm.Diffusion;
using Ddpm.Runs;
using Ddpm.Training;

namespace Ddpm.Cli.Commands;

/// <summary><c>ddpm schedule</c>: the schedule's per-timestep quantities, printed at round-trip precision.</summary>
public static class ScheduleCommand
{
    public static Command Create(CliContext ctx)
    {
        var schedule = new Option<string>("--schedule") { Description = "linear, cosine or sigmoid", DefaultValueFactory = _ => "linear" };
        var timesteps = new Option<int>("--timesteps", "-T") { Description = "Number of steps T", DefaultValueFactory = _ => 1000 };
        var betaStart = new Option<double>("--beta-start") { Description = "Linear schedule's first beta", DefaultValueFactory = _ => 1e-4 };
        var betaEnd = new Option<double>("--beta-end") { Description = "Linear schedule's last beta", DefaultValueFactory = _ => 0.02 };
        var format = new Option<string>("--format") { Description = "json or csv", DefaultValueFactory = _ => "csv" };
        var cmd = new Command("schedule", "Print beta, alpha_bar and the posterior's coefficients for every t (0-based: t=0 is the paper's t=1).")
        {
            schedule, timesteps, betaStart, betaEnd, format,
        };
        cmd.SetAction(parse =>
        {
            // The cosine and sigmoid schedules have no betas to set: a given --beta-start/--beta-end would be ignored silently.
            var kind = SettingNames.Schedule.Parse(parse.GetValue(schedule));
            bool linear = kind == ScheduleKind.Linear;
            foreach (var option in new[] { betaStart, betaEnd })
                if (!linear && parse.GetResult(option) is { Implicit: false })
                    throw new DdpmException($"{option.Name} {parse.GetValue(option).ToString(System.Globalization.CultureInfo.InvariantCulture)}: applies to --schedule linear only");
            var config = new TrainConfig
            {
                Schedule = kind, Timesteps = parse.GetValue(timesteps),
                BetaStart = parse.GetValue(betaStart), BetaEnd = parse.GetValue(betaEnd),
            };
            var s = DiffusionFactory.Schedule(config);
            var text = parse.GetValue(format)!.ToLowerInvariant() switch
            {
                "csv" => ScheduleTable.ToCsv(s),
                "json" => ScheduleTable.ToJson(s),
                var other => throw new DdpmException($"--format {other}: expected json or csv"),
            };
            ctx.Out.Write(text);
            if (!text.EndsWith('\n')) ctx.Out.WriteLine();
            return 0;
        });
        return cmd;
    }
}

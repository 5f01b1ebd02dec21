using System.CommandLine;
using Ddpm.Cli.Commands;

namespace Ddpm.Cli;

/// <summary>The <c>ddpm</c> command line: parses options and calls the library. Nothing else lives here.</summary>
public static class CliApp
{
    public static RootCommand Build(CliContext ctx)
    {
        var root = new RootCommand("ddpm: train, sample and explain Denoising Diffusion Probabilistic Models (Ho et al. 2020) on TorchSharp.")
        {
            TrainCommand.Create(ctx),
            SampleCommand.Create(ctx),
            NllCommand.Create(ctx),
            InterpolateCommand.Create(ctx),
            FidCommand.Create(ctx),
            DistanceCommand.Create(ctx),
            EvaluateCommand.Create(ctx),
            PlotCommand.Create(ctx),
            ConvertCommand.Create(ctx),
            StatsCommand.Create(ctx),
            DiffuseCommand.Create(ctx),
            ScheduleCommand.Create(ctx),
            InfoCommand.Create(ctx),
            ClassifierCommand.Create(ctx),
        };
        root.Options.Add(CommonOptions.Verbose);
        return root;
    }

    /// <summary>
    /// Runs the command line; user errors are one line on <paramref name="err"/> and exit code 1. A library error
    /// about a setting names the setting's key; it is printed with the setting's flag in its place.
    /// </summary>
    public static int Run(string[] args, TextWriter output, TextWriter err)
    {
        var ctx = new CliContext(output, err);
        var root = Build(ctx);
        var parsed = root.Parse(args);
        bool verbose = parsed.GetValue(CommonOptions.Verbose);
        if (parsed.Errors.Count > 0 && parsed.Action is not System.CommandLine.Help.HelpAction)
        {
            err.WriteLine($"error: {parsed.Errors[0].Message} (see --help)");
            return 2;
        }
        int code = 3;
        try
        {
            return code = parsed.Invoke(new InvocationConfiguration
            {
                EnableDefaultExceptionHandler = false,
                ProcessTerminationTimeout = null,
                Output = output,
                Error = err,
            });
        }
        catch (Exception e)
        {
            var inner = e is AggregateException { InnerException: not null } a ? a.InnerException! : e;
            string rank = MpiSession.RankPrefix;
            if (inner is DdpmException ddpm)
                err.WriteLine($"error: {rank}{OneLine(ddpm.MessageWithSetting(SettingOptions.Flag))}");
            else if (inner is IOException or UnauthorizedAccessException)
                err.WriteLine($"error: {rank}{OneLine(inner.Message)}");
            else if (inner is OperationCanceledException)
            {
                err.WriteLine($"{rank}interrupted");
                return code = ctx.InterruptedExitCode;
            }
            else
                err.WriteLine($"error: {rank}{inner.GetType().Name}: {OneLine(inner.Message)}");
            if (verbose) err.WriteLine(inner.ToString());
            err.Flush();
            // A file-system failure (full disk, no permission) is the user's environment, not a bug: exit 1 like other user errors.
            return code = inner is DdpmException or OperationCanceledException or IOException or UnauthorizedAccessException ? 1 : 3;
        }
        finally
        {
            // Under MPI: finalize after success; after a failure abort the job, so no other process waits for this one.
            MpiSession.End(failed: code != 0 && code != ctx.InterruptedExitCode);
        }
    }

    private static string OneLine(string s) => s.ReplaceLineEndings(" ").Trim();
}

/// <summary>Where commands write, and the Ctrl+C token.</summary>
public sealed class CliContext
{
    public TextWriter Out { get; }
    public TextWriter Err { get; }

    public CliContext(TextWriter output, TextWriter err)
    {
        Out = output;
        Err = err;
    }

    /// <summary>
    /// A token cancelled by the first Ctrl+C or SIGTERM (what kill, docker stop, systemd and batch schedulers send):
    /// the command finishes its step and saves. A second signal of either kind ends the process at once.
    /// </summary>
    public CancellationToken CancelOnCtrlC(string onInterrupt = "stopping")
    {
        var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            if (cts.IsCancellationRequested) return;
            e.Cancel = true;
            Interrupt(cts, 130, "Ctrl+C", onInterrupt);
        };
        _sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c =>
        {
            if (cts.IsCancellationRequested) return; // the second signal: let it terminate the process
            c.Cancel = true;
            Interrupt(cts, 143, "SIGTERM", onInterrupt);
        });
        return cts.Token;
    }

    private System.Runtime.InteropServices.PosixSignalRegistration? _sigterm;

    private void Interrupt(CancellationTokenSource cts, int exitCode, string signal, string onInterrupt)
    {
        InterruptedExitCode = exitCode;
        Err.WriteLine($"\nInterrupted ({signal}): {onInterrupt} (again to abort)...");
        cts.Cancel();
    }

    /// <summary>The exit code of a run stopped by a signal: 128 + its number (130 for Ctrl+C, 143 for SIGTERM).</summary>
    public int InterruptedExitCode { get; private set; } = 130;
}

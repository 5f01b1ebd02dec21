using System.Diagnostics;

namespace Ddpm.Tests.Distributed;

/// <summary>Runs the CLI under the system's mpirun, for the multi-process tests.</summary>
internal static class MpiRun
{
    /// <summary>mpirun's path, or null when it is not installed.</summary>
    public static string? Path { get; } = Environment.GetEnvironmentVariable("PATH")?.Split(System.IO.Path.PathSeparator)
        .Select(d => System.IO.Path.Combine(d, "mpirun")).FirstOrDefault(File.Exists);

    private static readonly Lazy<bool> IsOpenMpi = new(() => Run(Path!, ["--version"], 30).Output.Contains("Open MPI", StringComparison.Ordinal));

    /// <summary>Runs <c>mpirun -n N dotnet Ddpm.Cli.dll ARGS</c>; returns the exit code and the output of every process.</summary>
    public static (int Code, string Output) Cli(int processes, params string[] args)
    {
        var cli = TestUtil.CliDll();
        // Open MPI: allowed as root (CI containers), more processes than cores, no binding to cores, and waiting
        // processes yield the CPU (rank 0 evaluates and writes while the others wait in the next all-reduce).
        var launcher = IsOpenMpi.Value ? new[] { "--oversubscribe", "--bind-to", "none" } : [];
        return Run(Path!, ["-n", processes.ToString(System.Globalization.CultureInfo.InvariantCulture), .. launcher, "dotnet", cli, .. args], 600);
    }

    private static (int Code, string Output) Run(string file, string[] args, int timeoutSeconds)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
        info.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
        info.Environment["OMPI_MCA_mpi_yield_when_idle"] = "1";
        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutSeconds * 1000))
        {
            p.Kill(entireProcessTree: true);
            return (-1, $"timed out after {timeoutSeconds} s\n{stdout.Result}{stderr.Result}");
        }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}

/// <summary>A test that needs mpirun: skipped, with the reason shown, where it is not installed.</summary>
public sealed class MpiFactAttribute : FactAttribute
{
    public MpiFactAttribute()
    {
        if (MpiRun.Path is null) Skip = "mpirun not found: install Open MPI (apt-get install openmpi-bin) to run the multi-process tests";
    }
}

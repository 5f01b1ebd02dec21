using System.Diagnostics;
using Ddpm.Runs;

namespace Ddpm.Tests.Cli;

/// <summary>
/// SIGTERM, what kill, docker stop, systemd and batch schedulers send, stops `ddpm train` as Ctrl+C does: the step
/// finishes, a checkpoint is saved, the exit code is 143 (128 + 15), and the run resumes from there. Run as a real
/// process, since a signal cannot be sent to the test host's own CLI call.
/// </summary>
public class SignalTests
{
    [Fact]
    public async Task SigtermSavesACheckpointAndExits143()
    {
        if (OperatingSystem.IsWindows()) return; // no SIGTERM to send
        var dir = TestUtil.TempDir();
        var (_, cfg) = TestUtil.WriteTinyRunInputs(dir, images: 24, steps: 1_000_000);
        var run = Path.Combine(dir, "run");
        var cli = TestUtil.CliDll();
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { cli, "train", "--config", cfg, "--run-dir", run, "--no-progress" }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        try
        {
            var metrics = Path.Combine(run, MetricsLog.FileName);
            var deadline = DateTime.UtcNow.AddMinutes(5);
            while (!(File.Exists(metrics) && File.ReadAllLines(metrics).Length >= 2))
            {
                if (p.HasExited) Assert.Fail($"the run ended before the signal: {await stderr}");
                Assert.True(DateTime.UtcNow < deadline, "no training steps within 5 minutes");
                await Task.Delay(200);
            }
            using (var kill = Process.Start("kill", new[] { "-TERM", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) })) kill.WaitForExit();
            Assert.True(p.WaitForExit(TimeSpan.FromMinutes(5)), "the run did not stop after SIGTERM");
        }
        finally
        {
            if (!p.HasExited) p.Kill(entireProcessTree: true);
        }
        Assert.Equal(143, p.ExitCode);
        Assert.Contains("SIGTERM", await stderr);
        Assert.Contains("interrupted at step", await stdout);
        long saved = CheckpointStore.ReadState(CheckpointStore.Resolve(run)).Step;
        Assert.True(saved >= 2);

        var (code, _, err) = TestUtil.Cli("train", "--resume", run, "--steps", (saved + 1).ToString(System.Globalization.CultureInfo.InvariantCulture), "--no-progress");
        Assert.True(code == 0, err);
        Assert.Equal(saved + 1, CheckpointStore.ReadState(CheckpointStore.Resolve(run)).Step);
    }
}

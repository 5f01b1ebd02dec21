using Ddpm.Runtime;
using Ddpm.Data;
using Ddpm.Models;
using Ddpm.Runs;
using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Tests;

/// <summary>Small shared fixtures: temporary folders, a tiny network, a tiny data set.</summary>
public static class TestUtil
{
    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Ddpm.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
    }

    /// <summary>
    /// The folder under which every temporary folder of this test process lives. <see cref="TempCleanupFramework"/>
    /// removes it when the run ends, so a test that forgets (or cannot, because it failed) to delete its folder leaves
    /// nothing behind; roots left by killed runs are swept when the next run starts.
    /// </summary>
    public static readonly string TempRoot = CreateTempRoot();

    private static string CreateTempRoot()
    {
        var parent = Path.Combine(Path.GetTempPath(), "ddpm-tests");
        SweepRootsOfDeadProcesses(parent);
        var root = Path.Combine(parent, $"{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(root);
        return root;
    }

    /// <summary>
    /// Removes <see cref="TempRoot"/> (called once, at the end of the run). The test host is stopped soon after the last
    /// test, sooner than a delete of a few hundred MiB takes, so on Unix a detached <c>rm -rf</c> does it and outlives the
    /// host; elsewhere the delete runs here (and the next run's sweep removes whatever it did not reach).
    /// </summary>
    public static void DeleteTempRoot()
    {
        if (!OperatingSystem.IsWindows())
        {
            try
            {
                var psi = new System.Diagnostics.ProcessStartInfo("rm") { UseShellExecute = false };
                psi.ArgumentList.Add("-rf");
                psi.ArgumentList.Add(TempRoot);
                System.Diagnostics.Process.Start(psi)?.Dispose();
                return;
            }
            catch (System.ComponentModel.Win32Exception)
            {
                // no rm on the PATH: delete in process below
            }
        }
        try { Directory.Delete(TempRoot, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>Roots are named PID-GUID: delete those whose process no longer runs (a run killed before its cleanup).</summary>
    private static void SweepRootsOfDeadProcesses(string parent)
    {
        if (!Directory.Exists(parent)) return;
        foreach (var dir in Directory.EnumerateDirectories(parent))
        {
            var name = Path.GetFileName(dir);
            int dash = name.IndexOf('-');
            if (dash <= 0 || !int.TryParse(name[..dash], out int pid) || pid == Environment.ProcessId || IsRunning(pid)) continue;
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var p = System.Diagnostics.Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    /// <summary>
    /// The CLI as its own project built it, for tests that run it as another process: not the copy beside the tests,
    /// which coverage instruments, because such a process writing its coverage hits wipes the test process's own (the
    /// run's coverage figures would be wrong). The copy beside the tests only when the CLI's own build is missing.
    /// </summary>
    public static string CliDll()
    {
        var testDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string configuration = testDir.Parent!.Name, framework = testDir.Name;
        var own = Path.Combine(RepoRoot(), "src", "Ddpm.Cli", "bin", configuration, framework, "Ddpm.Cli.dll");
        return File.Exists(own) ? own : Path.Combine(AppContext.BaseDirectory, "Ddpm.Cli.dll");
    }

    /// <summary>
    /// <paramref name="count"/> random grey images (<see cref="TinyData"/>, seeded) of <paramref name="size"/> pixels as a
    /// raw IDX file NAME-images-idx3-ubyte in <paramref name="dir"/>; returns its path.
    /// </summary>
    public static string WriteIdx(string dir, string name, int count, long seed, int size = 8)
    {
        using var data = TinyData(count: count, size: size, seed: seed);
        var path = Path.Combine(dir, name + "-images-idx3-ubyte");
        Idx.WriteImages(path, data.Images, gzip: false);
        return path;
    }

    /// <summary>A fresh folder under <see cref="TempRoot"/> (removed with it at exit).</summary>
    public static string TempDir()
    {
        var d = Path.Combine(TempRoot, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }

    /// <summary>A U-Net small enough to train a few steps in well under a second.</summary>
    public static UNetConfig TinyUNet(int channels = 1, int size = 8) => new()
    {
        InChannels = channels, ImageSize = size, BaseChannels = 8, ChannelMult = new[] { 1, 2 }, NumResBlocks = 1,
        AttentionResolutions = new[] { size / 2 }, Dropout = 0.1, NormGroups = 4,
    };

    /// <summary>Random images in [-1, 1] (seeded).</summary>
    public static ImageDataset TinyData(int count = 24, int channels = 1, int size = 8, long seed = 1)
    {
        using var gen = new Generator((ulong)seed, CPU);
        var images = rand(new long[] { count, channels, size, size }, generator: gen) * 2 - 1;
        return new ImageDataset(images, null, "synthetic");
    }

    /// <summary>
    /// A tiny run on <see cref="TinyData"/>. It predicts eps with the linear schedule, the paper's target and schedule
    /// (the defaults are v and cosine), so the tests that rebuild a step by hand from Algorithm 1 (<c>StepReplica</c>,
    /// with the paper's linear betas) apply to it.
    /// </summary>
    public static TrainConfig TinyConfig(long steps = 4) => new()
    {
        Prediction = Ddpm.Diffusion.PredictionType.Epsilon, Schedule = Ddpm.Diffusion.ScheduleKind.Linear,
        Data = "synthetic", Model = TinyUNet(), Timesteps = 12, Steps = steps, BatchSize = 4, LearningRate = 1e-3,
        WarmupSteps = 2, SampleCount = 2, CheckpointEvery = 0, LogEvery = 1, Device = DeviceSpec.Cpu, Seed = 7,
    };

    /// <summary>
    /// Writes <paramref name="images"/> tiny images as a gzipped IDX file and a <see cref="TinyConfig"/> that trains on
    /// them into <paramref name="dir"/>; returns both paths, for CLI tests that start with <c>ddpm train --config</c>.
    /// </summary>
    public static (string Idx, string ConfigPath) WriteTinyRunInputs(string dir, int images, long steps)
    {
        var idx = Path.Combine(dir, "images-idx3-ubyte.gz");
        using (var data = TinyData(count: images))
            Idx.WriteImages(idx, data.Images, gzip: true);
        var config = TinyConfig(steps);
        config.Data = idx;
        var cfgPath = Path.Combine(dir, "cfg.json");
        File.WriteAllText(cfgPath, config.ToJson());
        return (idx, cfgPath);
    }

    /// <summary>Runs the command line in-process and returns its exit code, standard output and standard error.</summary>
    public static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = Ddpm.Cli.CliApp.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    public static Dictionary<string, Tensor> Parameters(nn.Module m) =>
        m.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter.detach().clone());
}

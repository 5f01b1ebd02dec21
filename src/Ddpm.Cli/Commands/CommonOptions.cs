using System.CommandLine;
using Ddpm.Runtime;
using static TorchSharp.torch;

namespace Ddpm.Cli.Commands;

/// <summary>Options shared by the commands that run a model.</summary>
public static class CommonOptions
{
    public static readonly Option<bool> Verbose = new("--verbose", "-v")
    {
        Description = "Print stack traces with errors",
        Recursive = true,
    };

    public static Option<string> Device() => new("--device")
    {
        Description = "cpu, cuda, cuda:N or auto (CUDA when TorchSharp sees it)",
        DefaultValueFactory = _ => "auto",
    };

    public static Option<int> Threads() => new("--threads")
    {
        Description = "Intra-op threads for libtorch (0 = all cores)",
        DefaultValueFactory = _ => 0,
    };

    public static Option<bool> NoProgress() => new("--no-progress")
    {
        Description = "Plain log lines instead of a progress bar",
    };

    /// <summary>Sets the thread count and resolves the device.</summary>
    public static Device Setup(string device, int threads)
    {
        if (threads < 0) throw new DdpmException($"--threads {threads}: must not be negative");
        TorchRuntime.SetThreads(threads);
        TorchRuntime.SetNnpack(false); // its "Unsupported hardware" warnings would flood stderr on many CPUs
        return TorchRuntime.ResolveDevice(device);
    }

    /// <summary>The bundled 10,000 MNIST digits, copied beside the executable at build time.</summary>
    public static string BundledData =>
        Path.Combine(AppContext.BaseDirectory, "data", "mnist-10k", "images-idx3-ubyte.gz");
}

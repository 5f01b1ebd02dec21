using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Runtime;

/// <summary>Device choice, thread count and seeding: the process-wide settings of the tensor engine.</summary>
public static class TorchRuntime
{
    /// <summary>Resolves "cpu", "cuda", "cuda:N" or "auto" (CUDA when TorchSharp sees it, else CPU).</summary>
    public static Device ResolveDevice(string name)
    {
        var n = (name ?? "auto").Trim().ToLowerInvariant();
        if (n == "auto") return cuda.is_available() ? CUDA : CPU;
        if (n == "cpu") return CPU;
        if (n == "cuda" || n.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!cuda.is_available())
                throw new DdpmException($"--device {name}: CUDA is not available (this build uses TorchSharp-cpu; see README, 'Running on a GPU')");
            return new Device(n);
        }
        throw new DdpmException($"--device {name}: expected cpu, cuda, cuda:N or auto");
    }

    /// <summary>Sets libtorch's intra-op thread count; 0 or less means all cores.</summary>
    public static int SetThreads(int threads)
    {
        int n = threads > 0 ? threads : Environment.ProcessorCount;
        torch.set_num_threads(n);
        return n;
    }

    /// <summary>Seeds libtorch's global generators (CPU and CUDA).</summary>
    public static void Seed(long seed)
    {
        torch.manual_seed(seed);
        if (cuda.is_available()) torch.cuda.manual_seed_all(seed);
    }
}

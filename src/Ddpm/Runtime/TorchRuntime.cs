using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Runtime;

/// <summary>Device choice, thread count and NNPACK: the process-wide settings of the tensor engine.</summary>
public static class TorchRuntime
{
    /// <summary>Resolves "cpu", "cuda", "cuda:N" or "auto" (CUDA when TorchSharp sees it, else CPU).</summary>
    public static Device ResolveDevice(string name) => ResolveDevice(DeviceSpec.Parse(name));

    /// <summary>The torch device of <paramref name="spec"/>; CUDA must be available when it is asked for.</summary>
    public static Device ResolveDevice(DeviceSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        switch (spec.Kind)
        {
            case DeviceKind.Auto: return cuda.is_available() ? CUDA : CPU;
            case DeviceKind.Cpu: return CPU;
            default:
                if (!cuda.is_available())
                    throw DdpmException.ForSetting("device", $"{spec}: CUDA is not available (this build uses TorchSharp-cpu; see README, 'Running on a GPU')");
                return new Device(spec.ToString());
        }
    }

    /// <summary>Sets libtorch's intra-op thread count; 0 or less means all cores.</summary>
    public static int SetThreads(int threads)
    {
        int n = threads > 0 ? threads : Environment.ProcessorCount;
        torch.set_num_threads(n);
        return n;
    }

    /// <summary>
    /// Turns libtorch's NNPACK convolution path off or on. On CPUs NNPACK does not support, libtorch tries it for
    /// gradient-free convolutions and prints "Could not initialize NNPACK! Unsupported hardware." on every try before
    /// falling back to the same kernels it uses with NNPACK off; the CLI turns it off. Returns false when the switch is
    /// not available.
    /// </summary>
    public static bool SetNnpack(bool enabled)
    {
        try
        {
            _ = torch.zeros(1);
            Native.SetUserEnabledNnpack(Native.GlobalContext(), enabled);
            return true;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            return false;
        }
    }

    /// <summary>Whether libtorch's NNPACK path is on (null when that cannot be read).</summary>
    public static bool? NnpackEnabled()
    {
        try
        {
            _ = torch.zeros(1);
            return Native.UserEnabledNnpack(Native.GlobalContext());
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            return null;
        }
    }

    /// <summary>at::globalContext() and its NNPACK switch, by their Itanium C++ ABI names in libtorch_cpu.</summary>
    private static class Native
    {
        [DllImport("torch_cpu", EntryPoint = "_ZN2at13globalContextEv")]
        public static extern IntPtr GlobalContext();

        [DllImport("torch_cpu", EntryPoint = "_ZN2at7Context20setUserEnabledNNPACKEb")]
        public static extern void SetUserEnabledNnpack(IntPtr context, [MarshalAs(UnmanagedType.I1)] bool enabled);

        [DllImport("torch_cpu", EntryPoint = "_ZNK2at7Context17userEnabledNNPACKEv")]
        [return: MarshalAs(UnmanagedType.I1)]
        public static extern bool UserEnabledNnpack(IntPtr context);
    }
}

using System.Runtime.InteropServices;

namespace Ddpm.Runtime;

/// <summary>
/// glibc's malloc set for a training loop, where libtorch's CPU allocator (plain malloc and free) asks for and returns
/// the same few hundred megabytes of activations and gradients on every step.
/// <para>
/// By default glibc serves blocks above its mmap threshold (128 KiB at first, raised as such blocks are freed, up to
/// 32 MiB) with fresh mmap calls, and gives the top of its heap back to the system whenever more than twice that is
/// free: each step then maps, zero-fills and unmaps its memory again. Measured on the reference machine (2 cores,
/// glibc 2.36; `ddpm train` of the default model, 100 steps): 19 % of the CPU time in the kernel and about 175
/// images/s, against about 420 images/s and 4 % with the settings made here (README, "Benchmark"). Setting only the
/// trim threshold (MALLOC_TRIM_THRESHOLD_ alone) is worse than nothing: it freezes the mmap threshold at its first
/// 128 KiB (23 images/s), so both are set.
/// </para>
/// <para>
/// The setting is process-wide and keeps freed memory in the process (its peak stays resident), which is what a
/// training or sampling process wants; the CLI and the benchmark make it at start. A program using the library
/// decides for itself. Setting the environment variable <see cref="OptOutVariable"/> to <c>default</c> leaves
/// glibc's behaviour alone (to measure the difference). Elsewhere than on Linux with glibc it does nothing.
/// </para>
/// </summary>
public static class NativeAllocator
{
    /// <summary>The environment variable that, set to <c>default</c>, turns <see cref="KeepFreedMemory"/> into a no-op.</summary>
    public const string OptOutVariable = "DDPM_NATIVE_ALLOCATOR";

    /// <summary>Blocks up to this size come from the heap, not from their own mmap (1 GiB).</summary>
    public const int MmapThresholdBytes = 1 << 30;

    /// <summary>Free memory at the top of the heap is kept up to this much (2 GiB - 1, mallopt's largest value).</summary>
    public const int TrimThresholdBytes = int.MaxValue;

    private const int MTrimThreshold = -1, MMmapThreshold = -3;   // mallopt's parameters (malloc.h)

    /// <summary>Whether <see cref="KeepFreedMemory"/> has set the thresholds in this process.</summary>
    public static bool Applied { get; private set; }

    /// <summary>
    /// The same settings as glibc's environment variables, for a child process that should allocate as this one does
    /// (the benchmark's PyTorch peer): empty unless <see cref="Applied"/>.
    /// </summary>
    public static IReadOnlyDictionary<string, string> EnvironmentForChild() => Applied
        ? new Dictionary<string, string>
        {
            ["MALLOC_MMAP_THRESHOLD_"] = MmapThresholdBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["MALLOC_TRIM_THRESHOLD_"] = TrimThresholdBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
        }
        : new Dictionary<string, string>();

    /// <summary>
    /// Sets glibc's mmap and trim thresholds (<see cref="MmapThresholdBytes"/>, <see cref="TrimThresholdBytes"/>).
    /// Returns whether both were set: false where the environment opts out, off Linux, or where the C library has no
    /// mallopt or refuses the values (musl accepts none).
    /// </summary>
    public static bool KeepFreedMemory()
    {
        if (string.Equals(Environment.GetEnvironmentVariable(OptOutVariable), "default", StringComparison.OrdinalIgnoreCase)) return false;
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            return Applied = Native.mallopt(MMmapThreshold, MmapThresholdBytes) == 1 && Native.mallopt(MTrimThreshold, TrimThresholdBytes) == 1;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    private static class Native
    {
        [DllImport("libc", EntryPoint = "mallopt")]
        public static extern int mallopt(int param, int value);
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Ddpm.Runtime;

namespace Ddpm.Tests;

/// <summary>
/// The glibc settings the CLI makes at start. A 40 MiB block, above glibc's largest automatic mmap threshold (32 MiB),
/// gets its own mmap under glibc's defaults and comes from the heap once the thresholds are set; read off mallinfo2's
/// count of mmapped bytes (glibc 2.33 or later). Below 64 MiB: a thread's arena grows in heaps of at most 64 MiB and
/// maps larger blocks whatever the thresholds say.
/// <para>
/// The effect is measured in a fresh process (this test assembly started again with <see cref="ProbeArgument"/>):
/// in the test process, earlier tests leave tens of megabytes free in the heap, and malloc serves a 40 MiB block from
/// them without asking for an mmap under any threshold (CI saw the default-case check fail that way), while other
/// threads' blocks move mallinfo2's process-wide count.
/// </para>
/// </summary>
public class NativeAllocatorTests
{
    public const string ProbeArgument = "native-allocator-probe";
    private const int BlockBytes = 40 << 20;

    [Fact]
    public void AfterKeepFreedMemoryALargeBlockComesFromTheHeapNotFromItsOwnMmap()
    {
        if (!OperatingSystem.IsLinux() || !HasMallinfo2()) return;   // the figures below are glibc's
        var (before, after, set) = RunProbe(optOut: false);
        Assert.True(before >= BlockBytes, $"glibc's default: a 40 MiB block is mmapped (mmapped bytes grew by {before})");
        Assert.True(set, "KeepFreedMemory set both thresholds");
        Assert.Equal(0, after);

        // Opted out: nothing is set, and the block is still mapped on its own.
        (before, after, set) = RunProbe(optOut: true);
        Assert.False(set);
        Assert.True(after >= BlockBytes, $"opted out: mmapped bytes grew by {after}");
    }

    [Fact]
    public void TheChildsVariablesSayTheSameAsTheSettings()
    {
        if (!OperatingSystem.IsLinux() || !HasMallinfo2()) return;
        var before = Environment.GetEnvironmentVariable(NativeAllocator.OptOutVariable);
        try
        {
            Environment.SetEnvironmentVariable(NativeAllocator.OptOutVariable, "default");
            bool appliedBefore = NativeAllocator.Applied;
            Assert.False(NativeAllocator.KeepFreedMemory());   // opted out: nothing set
            Assert.Equal(appliedBefore, NativeAllocator.Applied);
            Environment.SetEnvironmentVariable(NativeAllocator.OptOutVariable, null);
            Assert.True(NativeAllocator.KeepFreedMemory());
        }
        finally
        {
            Environment.SetEnvironmentVariable(NativeAllocator.OptOutVariable, before);
        }
        Assert.True(NativeAllocator.Applied);
        // 1 GiB and mallopt's largest value.
        var env = NativeAllocator.EnvironmentForChild();
        Assert.Equal("1073741824", env["MALLOC_MMAP_THRESHOLD_"]);
        Assert.Equal("2147483647", env["MALLOC_TRIM_THRESHOLD_"]);
    }

    /// <summary>Starts this assembly as a fresh process that runs <see cref="Probe"/>; returns what it printed.</summary>
    private static (long Before, long After, bool Set) RunProbe(bool optOut)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in new[] { "exec", typeof(NativeAllocatorTests).Assembly.Location, ProbeArgument }) start.ArgumentList.Add(arg);
        // glibc reads these at start: a clean child has none of them.
        foreach (var name in new[] { "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_", "GLIBC_TUNABLES" })
            start.Environment.Remove(name);
        if (optOut) start.Environment[NativeAllocator.OptOutVariable] = "default";
        else start.Environment.Remove(NativeAllocator.OptOutVariable);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(60_000), "the probe process did not finish in a minute");
        Assert.True(process.ExitCode == 0, $"probe exit code {process.ExitCode}: {stderr.Result}{stdout.Result}");
        var parts = stdout.Result.Trim().Split(' ');
        Assert.True(parts.Length == 3, $"probe printed: {stdout.Result}");
        return (long.Parse(parts[0], CultureInfo.InvariantCulture), long.Parse(parts[1], CultureInfo.InvariantCulture), bool.Parse(parts[2]));
    }

    /// <summary>
    /// The child's side: the mmapped bytes a 40 MiB block adds under glibc's defaults, then after
    /// <see cref="NativeAllocator.KeepFreedMemory"/>, and whether that call set the thresholds. Runs on the main thread
    /// of a process that has allocated little, so no free heap space can serve the block.
    /// </summary>
    internal static int Probe()
    {
        long before = MmappedBytesFor(BlockBytes);
        bool set = NativeAllocator.KeepFreedMemory();
        long after = MmappedBytesFor(BlockBytes);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{before} {after} {set}"));
        return 0;
    }

    /// <summary>How many more bytes glibc holds in mmapped blocks while a block of <paramref name="bytes"/> is allocated.</summary>
    private static long MmappedBytesFor(int bytes)
    {
        long before = (long)mallinfo2().hblkhd;
        var block = Marshal.AllocHGlobal(bytes);   // malloc
        try
        {
            return (long)mallinfo2().hblkhd - before;
        }
        finally
        {
            Marshal.FreeHGlobal(block);
        }
    }

    private static bool HasMallinfo2()
    {
        try { _ = mallinfo2(); return true; }
        catch (EntryPointNotFoundException) { return false; }
        catch (DllNotFoundException) { return false; }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MallInfo2
    {
        public nuint arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
    }

    [DllImport("libc")]
    private static extern MallInfo2 mallinfo2();
}

using System.Runtime.InteropServices;
using Ddpm.Runtime;

namespace Ddpm.Tests;

/// <summary>
/// The glibc settings the CLI makes at start: a 40 MiB block, above glibc's largest automatic mmap threshold (32 MiB),
/// gets its own mmap under glibc's defaults and comes from the heap once the thresholds are set (read off mallinfo2's
/// count of mmapped bytes, glibc 2.33 or later). Below 64 MiB: a thread's arena (a test runs on a pool thread) grows
/// in heaps of at most 64 MiB and maps larger blocks whatever the thresholds say.
/// <para>
/// mallinfo2's count is process-wide, so another thread freeing or mapping a large block between the two reads
/// skews a reading (CI once saw the default-case check fail that way while other tests ran). The class therefore runs
/// alone (a collection with parallelisation off runs after the parallel ones, with nothing beside it), lets pending
/// finalizers (tensors released by the GC) finish first, and takes the most favourable of a few readings: a setting
/// that does not work fails every reading.
/// </para>
/// </summary>
[Collection(Name)]
public class NativeAllocatorTests
{
    public const string Name = "Process-wide allocator settings";
    private const int BlockBytes = 40 << 20;
    private const int Readings = 3;

    [Fact]
    public void AfterKeepFreedMemoryALargeBlockComesFromTheHeapNotFromItsOwnMmap()
    {
        if (!OperatingSystem.IsLinux() || !HasMallinfo2()) return;   // the figures below are glibc's
        if (!NativeAllocator.Applied)
            Assert.True(MmappedReadings().Max() >= BlockBytes, "glibc's default: a 40 MiB block is mmapped");

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
        Assert.Equal(0, MmappedReadings().Min());
        // The child's variables say the same: 1 GiB and mallopt's largest value.
        var env = NativeAllocator.EnvironmentForChild();
        Assert.Equal("1073741824", env["MALLOC_MMAP_THRESHOLD_"]);
        Assert.Equal("2147483647", env["MALLOC_TRIM_THRESHOLD_"]);
    }

    private static IEnumerable<long> MmappedReadings()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        return Enumerable.Range(0, Readings).Select(_ => MmappedBytesFor(BlockBytes)).ToArray();
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

[CollectionDefinition(NativeAllocatorTests.Name, DisableParallelization = true)]
public sealed class NativeAllocatorCollection;

using System.Diagnostics;
using System.Globalization;
using Ddpm.Distributed;
using Ddpm.Models;

namespace Ddpm.Bench;

/// <summary>
/// Under mpirun: the time of the one all-reduce a data-parallel training step makes, for each preset's gradient (its
/// parameters, float32, plus the loss, the stop flag and a batch of 64 losses), every process entering together (a
/// barrier first), so that the figure is the exchange itself and not the wait for the slowest process.
/// </summary>
public static class AllReduceBenchmark
{
    public static int Run(TextWriter output)
    {
        using var comm = MpiEnvironment.CommunicatorOrNull()!;
        var say = comm.Rank == 0 ? output : TextWriter.Null;
        say.WriteLine($"all-reduce of one step's buffer, {comm.Size} processes, {(comm as MpiCommunicator)?.Library}");
        foreach (var preset in new[] { "mnist-small", "ho-cifar10" })
        {
            long parameters = ModelStats.CountParameters(Presets.Get(preset));
            var buffer = new float[parameters + 2 + 64];
            for (int i = 0; i < 3; i++) comm.AllReduceSum(buffer); // warm-up
            const int calls = 10;
            var watch = new Stopwatch();
            for (int i = 0; i < calls; i++)
            {
                comm.Barrier();
                watch.Start();
                comm.AllReduceSum(buffer);
                watch.Stop();
            }
            double ms = watch.Elapsed.TotalMilliseconds / calls, mb = buffer.Length * 4 / 1e6;
            say.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0}: {1:F1} MB per step, {2:F1} ms per all-reduce ({3:F2} GB/s of buffer)",
                preset, mb, ms, mb / ms));
        }
        return 0;
    }
}

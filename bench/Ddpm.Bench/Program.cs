using Ddpm;
using Ddpm.Bench;

// Benchmarks of the default preset: training throughput against the machine's matmul rate and the PyTorch peer,
// sampling speed, memory over many steps, the offline classifier's feature extraction, and optionally FID Inception
// feature extraction. Usage: dotnet run --project bench/Ddpm.Bench -c Release -- --help
// Under mpirun: the per-step all-reduce of data-parallel training, alone (bench/mpi-throughput.sh runs it).
// As the CLI does at start (see NativeAllocator; DDPM_NATIVE_ALLOCATOR=default measures glibc's default behaviour).
Ddpm.Runtime.NativeAllocator.KeepFreedMemory();
if (Ddpm.Distributed.MpiEnvironment.IsMultiProcess) return AllReduceBenchmark.Run(Console.Out);
var (options, code) = BenchCommand.Parse(args, Console.Out, Console.Error);
if (options is null) return code;
try
{
    var report = Benchmarks.Run(options, Console.Out);
    Console.WriteLine();
    Console.WriteLine(report);
    return 0;
}
catch (DdpmException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

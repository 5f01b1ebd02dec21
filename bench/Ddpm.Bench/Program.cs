using Ddpm.Bench;

// Benchmarks of the default preset: training throughput against the machine's matmul rate, sampling speed,
// memory over many steps, the offline classifier's feature extraction, and optionally FID Inception feature extraction.
// Usage: dotnet run --project bench/Ddpm.Bench -c Release -- [--steps N] [--preset P] [--threads N] [--classifier-only]
// [--inception | --inception-only] [--inception-batch 50] [--inception-batches 2]
var options = BenchOptions.Parse(args);
var report = Benchmarks.Run(options, Console.Out);
Console.WriteLine();
Console.WriteLine(report);
return 0;

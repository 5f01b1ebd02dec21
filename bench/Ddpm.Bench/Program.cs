using Ddpm.Bench;

// Benchmarks of the default preset: training throughput against the machine's matmul rate, sampling speed,
// and memory over many steps. Usage: dotnet run --project bench/Ddpm.Bench -c Release -- [--steps N] [--preset P]
// [--inception | --inception-only] [--inception-batch 50] [--inception-batches 2]: FID Inception feature extraction too, or only.
var options = BenchOptions.Parse(args);
var report = Benchmarks.Run(options, Console.Out);
Console.WriteLine();
Console.WriteLine(report);
return 0;

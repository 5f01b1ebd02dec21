using Ddpm.Cli;
using Ddpm.Runtime;

// Before any tensor exists: glibc's malloc keeps the memory libtorch frees, instead of mapping it afresh every step
// (more than twice the training throughput on the reference machine; see NativeAllocator).
NativeAllocator.KeepFreedMemory();
return CliApp.Run(args, Console.Out, Console.Error);

namespace Ddpm.Tests;

/// <summary>
/// The test assembly's own entry point (GenerateProgramFile is off in the project): the test runner never calls it; a
/// test that needs a fresh process starts this assembly again with an argument naming what to run there.
/// </summary>
internal static class ChildProcessEntry
{
    public static int Main(string[] args) => args is [NativeAllocatorTests.ProbeArgument] ? NativeAllocatorTests.Probe() : 2;
}

using Xunit.Abstractions;
using Xunit.Sdk;

[assembly: TestFramework("Ddpm.Tests.TempCleanupFramework", "Ddpm.Tests")]

namespace Ddpm.Tests;

/// <summary>
/// xunit's own test framework, plus one thing at the end of the run: remove <see cref="TestUtil.TempRoot"/>. This runs
/// when the framework is disposed, after the last test; a process-exit handler would run while the host is already
/// closing, where a long delete delayed coverlet's write of its hits until the host was killed (0 % for the CLI).
/// </summary>
public sealed class TempCleanupFramework : XunitTestFramework
{
    public TempCleanupFramework(IMessageSink messageSink) : base(messageSink)
    {
        DisposalTracker.Add(new TempRootCleanup());
    }

    private sealed class TempRootCleanup : IDisposable
    {
        public void Dispose() => TestUtil.DeleteTempRoot();
    }
}

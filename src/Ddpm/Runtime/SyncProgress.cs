namespace Ddpm.Runtime;

/// <summary>An <see cref="IProgress{T}"/> that calls its handler at once, on the reporting thread, in order.</summary>
public sealed class SyncProgress<T> : IProgress<T>
{
    private readonly Action<T> _handler;
    public SyncProgress(Action<T> handler) => _handler = handler;
    public void Report(T value) => _handler(value);
}

using System.Globalization;

namespace Ddpm.Runs;

/// <summary>
/// An exclusive lock on a run folder, held while a trainer writes to it, so that two processes never train (and
/// prune) the same run. It is the operating system's lock on <c>RUN/.lock</c> (flock on Linux and macOS, a sharing
/// lock on Windows): a killed process releases it, so a stale file never blocks a resume. The owner's process id
/// goes to <c>RUN/.lock-owner</c>, for the error message (the locked file itself cannot be read by others on .NET).
/// </summary>
public sealed class RunLock : IDisposable
{
    public const string FileName = ".lock";
    public const string OwnerFile = ".lock-owner";
    private readonly FileStream _stream;

    private RunLock(FileStream stream) => _stream = stream;

    /// <summary>Takes the lock of <paramref name="runDir"/> (which must exist) or throws a one-line error naming the holder.</summary>
    public static RunLock Acquire(string runDir)
    {
        var path = Path.Combine(runDir, FileName);
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (File.Exists(path))
        {
            throw new DdpmException($"{runDir} is in use by another process ({Holder(runDir)}): one run folder, one trainer at a time", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DdpmException($"{path}: cannot create the run's lock file: {e.Message.ReplaceLineEndings(" ")}", e);
        }
        try
        {
            Ddpm.IO.AtomicFile.WriteAllText(Path.Combine(runDir, OwnerFile), Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "\n");
        }
        catch (DdpmException)
        {
            // The pid is only for messages; the lock is what matters.
        }
        return new RunLock(stream);
    }

    private static string Holder(string runDir)
    {
        try
        {
            var text = File.ReadAllText(Path.Combine(runDir, OwnerFile)).Trim();
            return text.Length == 0 ? "pid unknown" : $"pid {text}";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "pid unknown";
        }
    }

    public void Dispose() => _stream.Dispose();
}

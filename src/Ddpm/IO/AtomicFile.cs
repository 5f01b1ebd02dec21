namespace Ddpm.IO;

/// <summary>
/// Writes files so that a crash mid-write never leaves a half-written file: the content goes to a temporary
/// file in the same folder, is flushed to disk, and is then renamed over the target (atomic on POSIX and NTFS).
/// A failure leaves any previous file untouched and no temporary file behind.
/// </summary>
public static class AtomicFile
{
    public static void WriteAllText(string path, string text) =>
        Write(path, stream =>
        {
            using var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(false), leaveOpen: true);
            writer.Write(text);
        });

    public static void Write(string path, byte[] content) => Write(path, s => s.Write(content));

    /// <summary>Runs <paramref name="write"/> on a temporary file, flushes it to disk, then renames it onto <paramref name="path"/>.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? ".";
        try { Directory.CreateDirectory(dir); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DdpmException($"{path}: cannot create folder {dir}: {OneLine(e.Message)}", e);
        }
        string tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            FaultInjection.At($"{Path.GetFileName(full)}: written, before the rename");
            File.Move(tmp, full, overwrite: true);
        }
        catch (Exception e) when (FaultInjection.IsCrash(e)) { throw; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(tmp);
            throw new DdpmException($"{path}: cannot write: {OneLine(e.Message)}", e);
        }
        catch
        {
            TryDelete(tmp);
            throw;
        }
    }

    /// <summary>Forces a file that another library wrote to reach the disk.</summary>
    public static void FlushToDisk(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        fs.Flush(flushToDisk: true);
    }

    /// <summary>An exception message folded onto one line.</summary>
    public static string OneLine(string message) => message.Replace('\r', ' ').Replace('\n', ' ').Trim();

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

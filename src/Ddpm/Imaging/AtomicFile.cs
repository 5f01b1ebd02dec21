namespace Ddpm.Imaging;

/// <summary>Atomic file writes: the content goes to a temporary file in the target's folder, which is then renamed over the target.</summary>
internal static class AtomicFile
{
    /// <summary>Writes a file atomically, creating its parent folders; a failure leaves any previous file untouched and no temporary behind.</summary>
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
            File.Move(tmp, full, overwrite: true);
        }
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

    public static void Write(string path, byte[] content) => Write(path, s => s.Write(content));

    internal static string OneLine(string message) => message.Replace('\r', ' ').Replace('\n', ' ').Trim();

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

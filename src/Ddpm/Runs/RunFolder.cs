namespace Ddpm.Runs;

/// <summary>File-system checks of a run folder, each failing with a one-line error before any training step is spent.</summary>
public static class RunFolder
{
    /// <summary>The run's resolved configuration, in the run folder.</summary>
    public const string ConfigFile = "config.json";

    /// <summary>Creates the run folder, or says in one line why it cannot be (a file in the way, no permission, ...).</summary>
    public static void Create(string runDir)
    {
        if (File.Exists(runDir)) throw new DdpmException($"{runDir}: is a file, not a folder for the run");
        try
        {
            Directory.CreateDirectory(runDir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new DdpmException($"{runDir}: cannot create the run folder: {e.Message.ReplaceLineEndings(" ")}", e);
        }
    }

    /// <summary>Creates <paramref name="dir"/> and writes and deletes a small file in it, so a read-only folder is found now, not at the first checkpoint.</summary>
    public static void ProbeWritable(string dir)
    {
        var probe = Path.Combine(dir, $".probe-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(dir);
            using (var f = new FileStream(probe, FileMode.CreateNew, FileAccess.Write)) f.WriteByte(0);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DdpmException($"{dir}: not writable: {e.Message.ReplaceLineEndings(" ")}", e);
        }
    }

    /// <summary>The run folder that holds a checkpoint folder RUN/checkpoints/step_N (its grandparent), for messages.</summary>
    public static string OfCheckpoint(string checkpointDir)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(checkpointDir));
        var parent = Path.GetDirectoryName(full);
        return parent is not null && Path.GetFileName(parent) == CheckpointStore.Folder
            ? Path.GetDirectoryName(parent) ?? parent
            : parent ?? full;
    }
}

namespace Ddpm.Tests.Data;

/// <summary>A temporary folder deleted at dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = TestUtil.TempDir();
    public string File(string name) => System.IO.Path.Combine(Path, name);
    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}

internal static class RepoPaths
{
    /// <summary>The folder holding Ddpm.slnx, found by walking up from the test assembly.</summary>
    public static string Root
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Ddpm.slnx"))) dir = dir.Parent;
            return dir?.FullName ?? throw new InvalidOperationException("Ddpm.slnx not found above " + AppContext.BaseDirectory);
        }
    }

    public static string Mnist10k => Path.Combine(Root, "data", "mnist-10k");
}

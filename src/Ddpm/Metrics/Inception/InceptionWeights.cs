namespace Ddpm.Metrics.Inception;

/// <summary>
/// Where the FID Inception weights come from: pytorch-fid's port of the TF graph "inception-2015-12-05",
/// <c>pt_inception-2015-12-05-6726825d.pth</c> (a PyTorch state dict). The file is looked for, in this order, at an
/// explicit path, at the path in the environment variable <c>DDPM_INCEPTION_WEIGHTS</c>, and in the cache folder
/// (<c>$XDG_CACHE_HOME/ddpm</c>, else <c>~/.cache/ddpm</c>) under its own name or as
/// <c>pt_inception-2015-12-05-6726825d.safetensors</c> (the same tensors). Nothing is downloaded unless
/// <see cref="DownloadAsync"/> is called.
/// </summary>
public static partial class InceptionWeights
{
    /// <summary>The file name pytorch-fid publishes (torch hub convention: the 8 hex digits start its SHA-256).</summary>
    public const string FileName = "pt_inception-2015-12-05-6726825d.pth";

    /// <summary>The same state dict saved as safetensors, also accepted in the cache folder.</summary>
    public const string SafetensorsFileName = "pt_inception-2015-12-05-6726825d.safetensors";

    /// <summary>pytorch-fid's release asset.</summary>
    public const string Url = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FileName;

    /// <summary>
    /// SHA-256 of <see cref="FileName"/>, as projects that pin it state (e.g. a hash table beside pytorch-fid's URL;
    /// torch-fidelity's copy of the weights has the same hash); it starts with the file name's 6726825d.
    /// </summary>
    public const string Sha256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2";

    /// <summary>Size of <see cref="FileName"/> in bytes (about 91 MiB).</summary>
    public const long FileBytes = 95_628_359;

    /// <summary>The environment variable that may hold the weights' path.</summary>
    public const string EnvironmentVariable = "DDPM_INCEPTION_WEIGHTS";

    /// <summary>The cache folder: <c>$XDG_CACHE_HOME/ddpm</c>, else <c>~/.cache/ddpm</c>.</summary>
    public static string CacheFolder() => CacheFolder(Environment.GetEnvironmentVariable);

    internal static string CacheFolder(Func<string, string?> env)
    {
        var xdg = env("XDG_CACHE_HOME");
        if (!string.IsNullOrWhiteSpace(xdg)) return Path.Combine(xdg, "ddpm");
        var home = env("HOME");
        if (string.IsNullOrWhiteSpace(home)) home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return Path.Combine(home, ".cache", "ddpm");
    }

    /// <summary>
    /// The weights file to use: <paramref name="explicitPath"/> when given, else <c>$DDPM_INCEPTION_WEIGHTS</c> when set,
    /// else the file in the cache folder. A path given but missing, or no file anywhere, is a <see cref="DdpmException"/>
    /// whose message says where to get the file and where to put it.
    /// </summary>
    public static string Resolve(string? explicitPath = null) => Resolve(explicitPath, Environment.GetEnvironmentVariable);

    internal static string Resolve(string? explicitPath, Func<string, string?> env)
    {
        if (!string.IsNullOrWhiteSpace(explicitPath))
            return File.Exists(explicitPath) ? explicitPath : throw new DdpmException($"FID Inception weights not found: {explicitPath}");
        var fromEnv = env(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnv))
            return File.Exists(fromEnv) ? fromEnv : throw new DdpmException($"FID Inception weights not found: {fromEnv} (from ${EnvironmentVariable})");
        var cache = CacheFolder(env);
        foreach (var name in new[] { FileName, SafetensorsFileName })
        {
            var p = Path.Combine(cache, name);
            if (File.Exists(p)) return p;
        }
        throw new DdpmException(MissingMessage(cache));
    }

    internal static string MissingMessage(string cache) =>
        $"FID Inception weights not found: download {Url} (91 MiB, SHA-256 {Sha256}) and pass its path, "
        + $"or set ${EnvironmentVariable} to it, or put it in {cache}/ (or download it there first)";
}

using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace Ddpm.Metrics.Inception;

/// <summary>Bytes received so far and the total when the server says it.</summary>
public readonly record struct DownloadProgress(long Bytes, long? TotalBytes);

public static partial class InceptionWeights
{
    /// <summary>
    /// Downloads <see cref="Url"/> into <paramref name="folder"/> (default: <see cref="CacheFolder()"/>) as
    /// <see cref="FileName"/> and returns its path. The bytes go to a temporary file in that folder while their SHA-256
    /// is computed; only a file whose hash is <see cref="Sha256"/> is renamed into place (atomically), so a partial
    /// or altered download never takes the name. A file already there with the right hash is kept. Call this only when
    /// the user asked for the download.
    /// </summary>
    public static async Task<string> DownloadAsync(string? folder = null, IProgress<DownloadProgress>? progress = null,
        HttpClient? http = null, CancellationToken cancellationToken = default)
    {
        folder ??= CacheFolder();
        var target = Path.Combine(folder, FileName);
        if (File.Exists(target) && string.Equals(ComputeSha256(target), Sha256, StringComparison.OrdinalIgnoreCase)) return target;
        try { Directory.CreateDirectory(folder); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DdpmException($"cannot create the cache folder {folder}: {e.Message}", e);
        }
        var tmp = Path.Combine(folder, $".{FileName}.{Guid.NewGuid():N}.part");
        var ownClient = http is null;
        http ??= new HttpClient { Timeout = TimeSpan.FromMinutes(10) };
        try
        {
            string hash;
            using var request = new HttpRequestMessage(HttpMethod.Get, Url);
            request.Headers.UserAgent.ParseAdd("ddpm-dotnet");
            using (var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false))
            {
                if (!response.IsSuccessStatusCode)
                    throw new DdpmException($"download of {Url} failed: HTTP {(int)response.StatusCode} {response.ReasonPhrase}");
                long? total = response.Content.Headers.ContentLength;
                await using var source = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
                await using var sink = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true);
                hash = await CopyHashingAsync(source, sink, total, progress, cancellationToken).ConfigureAwait(false);
                await sink.FlushAsync(cancellationToken).ConfigureAwait(false);
                sink.Flush(flushToDisk: true);
            }
            CheckSha256(hash, Sha256, Url);
            File.Move(tmp, target, overwrite: true);
            return target;
        }
        catch (HttpRequestException e)
        {
            throw new DdpmException($"download of {Url} failed: {e.Message} (download it by hand; see the README)", e);
        }
        catch (TaskCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new DdpmException($"download of {Url} timed out", e);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
            if (ownClient) http.Dispose();
        }
    }

    /// <summary>Copies <paramref name="source"/> to <paramref name="sink"/> and returns the SHA-256 (lower-case hex) of the bytes.</summary>
    internal static async Task<string> CopyHashingAsync(Stream source, Stream sink, long? total, IProgress<DownloadProgress>? progress, CancellationToken ct)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        long received = 0;
        int n;
        while ((n = await source.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
        {
            sha.AppendData(buffer, 0, n);
            await sink.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            received += n;
            progress?.Report(new DownloadProgress(received, total));
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>SHA-256 of a file, lower-case hex.</summary>
    public static string ComputeSha256(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }

    /// <summary>
    /// Checks that the file's SHA-256 is <see cref="Sha256"/> (and so starts with the 8 hex digits of its torch-hub name);
    /// a <see cref="DdpmException"/> otherwise.
    /// </summary>
    public static void VerifyFile(string path) => CheckSha256(ComputeSha256(path), Sha256, path);

    /// <summary>A hash against the expected one (case-insensitive hex); a <see cref="DdpmException"/> naming <paramref name="what"/> otherwise.</summary>
    internal static void CheckSha256(string actual, string expected, string what)
    {
        if (!string.Equals(actual, expected, StringComparison.OrdinalIgnoreCase))
            throw new DdpmException($"{what}: SHA-256 is {actual}, expected {expected} (corrupt or not the FID Inception weights)");
    }

    /// <summary>The hex digits torch hub puts at the end of a file name (name-HEX.ext), or null.</summary>
    public static string? HubHashPrefix(string fileName)
    {
        var m = Regex.Match(Path.GetFileName(fileName), @"-([0-9a-f]{6,})\.[^.]+$");
        return m.Success ? m.Groups[1].Value : null;
    }
}

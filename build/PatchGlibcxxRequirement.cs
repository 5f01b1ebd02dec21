using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

/// <summary>
/// Marks a GLIBCXX version requirement weak in every libLibTorchSharp.so below a folder, when the
/// system libstdc++ does not define that version. ELF64 little-endian only; anything else is left alone.
/// </summary>
public class PatchGlibcxxRequirement : Task
{
    [Required] public string Directory { get; set; } = "";
    [Required] public string VersionName { get; set; } = "";

    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlgWeak = 0x2;

    public override bool Execute()
    {
        if (!System.Runtime.InteropServices.RuntimeInformation.IsOSPlatform(System.Runtime.InteropServices.OSPlatform.Linux))
            return true;
        if (SystemHasVersion()) return true;
        if (!System.IO.Directory.Exists(Directory)) return true;
        foreach (var file in System.IO.Directory.EnumerateFiles(Directory, "libLibTorchSharp.so", SearchOption.AllDirectories))
        {
            try
            {
                var bytes = File.ReadAllBytes(file);
                int patched = Patch(bytes);
                if (patched > 0)
                {
                    // Write a fresh file and rename it over the old one: never edits a file in place, so a
                    // hard link into the package cache is never modified.
                    var tmp = file + ".patching";
                    File.WriteAllBytes(tmp, bytes);
                    File.Delete(file);
                    File.Move(tmp, file);
                    Log.LogMessage(MessageImportance.Normal, $"Marked {VersionName} weak in {file}");
                }
            }
            catch (Exception e)
            {
                Log.LogWarning($"Could not patch {file}: {e.Message}");
            }
        }
        return true;
    }

    private bool SystemHasVersion()
    {
        string[] candidates =
        {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
        };
        var needle = Encoding.ASCII.GetBytes(VersionName + "\0");
        foreach (var path in candidates)
        {
            if (!File.Exists(path)) continue;
            var data = File.ReadAllBytes(path);
            return IndexOf(data, needle) >= 0;
        }
        return true; // no libstdc++ found where we look: do nothing
    }

    private static int IndexOf(byte[] hay, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= hay.Length; i++)
        {
            int j = 0;
            while (j < needle.Length && hay[i + j] == needle[j]) j++;
            if (j == needle.Length) return i;
        }
        return -1;
    }

    private int Patch(byte[] b)
    {
        if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[2] != (byte)'L' || b[3] != (byte)'F') return 0;
        if (b[4] != 2 || b[5] != 1) return 0; // ELF64, little-endian
        ulong shoff = BitConverter.ToUInt64(b, 0x28);
        int shentsize = BitConverter.ToUInt16(b, 0x3A);
        int shnum = BitConverter.ToUInt16(b, 0x3C);
        int count = 0;
        for (int i = 0; i < shnum; i++)
        {
            long sh = (long)shoff + (long)i * shentsize;
            if (BitConverter.ToUInt32(b, (int)sh + 4) != ShtGnuVerneed) continue;
            long off = (long)BitConverter.ToUInt64(b, (int)sh + 24);
            uint link = BitConverter.ToUInt32(b, (int)sh + 40);
            uint entries = BitConverter.ToUInt32(b, (int)sh + 44);
            long strSh = (long)shoff + (long)link * shentsize;
            long strOff = (long)BitConverter.ToUInt64(b, (int)strSh + 24);
            long vn = off;
            for (uint e = 0; e < entries; e++)
            {
                int cnt = BitConverter.ToUInt16(b, (int)vn + 2);
                uint aux = BitConverter.ToUInt32(b, (int)vn + 8);
                uint next = BitConverter.ToUInt32(b, (int)vn + 12);
                long va = vn + aux;
                for (int k = 0; k < cnt; k++)
                {
                    ushort flags = BitConverter.ToUInt16(b, (int)va + 4);
                    uint name = BitConverter.ToUInt32(b, (int)va + 8);
                    uint vnext = BitConverter.ToUInt32(b, (int)va + 12);
                    if (ReadCString(b, strOff + name) == VersionName && (flags & VerFlgWeak) == 0)
                    {
                        flags |= VerFlgWeak;
                        b[va + 4] = (byte)(flags & 0xff);
                        b[va + 5] = (byte)(flags >> 8);
                        count++;
                    }
                    if (vnext == 0) break;
                    va += vnext;
                }
                if (next == 0) break;
                vn += next;
            }
        }
        return count;
    }

    private static string ReadCString(byte[] b, long start)
    {
        long end = start;
        while (end < b.Length && b[end] != 0) end++;
        return Encoding.ASCII.GetString(b, (int)start, (int)(end - start));
    }
}

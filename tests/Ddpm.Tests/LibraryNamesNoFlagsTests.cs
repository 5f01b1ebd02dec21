using System.Text.RegularExpressions;

namespace Ddpm.Tests;

/// <summary>
/// The library speaks settings, not command-line flags: no string literal in src/Ddpm names a flag (a "--" followed
/// by a letter). Its errors name the setting (<see cref="DdpmException.Setting"/>), and the CLI prints the flag.
/// </summary>
public partial class LibraryNamesNoFlagsTests
{
    [GeneratedRegex("--[a-zA-Z]")]
    private static partial Regex Flag();

    /// <summary>The parts of a line inside double quotes (regular, interpolated and verbatim strings), comments skipped.</summary>
    internal static IEnumerable<string> StringLiterals(string line)
    {
        var trimmed = line.TrimStart();
        if (trimmed.StartsWith("//", StringComparison.Ordinal) || trimmed.StartsWith('*')) yield break;
        bool inside = false;
        int start = 0;
        for (int i = 0; i < line.Length; i++)
        {
            char ch = line[i];
            if (!inside && ch == '/' && i + 1 < line.Length && line[i + 1] == '/') yield break; // a trailing comment
            if (ch == '\\' && inside) { i++; continue; }
            if (ch == '\'' && !inside) { int close = line.IndexOf('\'', i + (i + 1 < line.Length && line[i + 1] == '\\' ? 3 : 2)); i = close < 0 ? i : close; continue; }
            if (ch != '"') continue;
            if (inside) yield return line[start..i];
            else start = i + 1;
            inside = !inside;
        }
    }

    [Fact]
    public void TheScannerFindsFlagsInStringsOnly()
    {
        Assert.Equal(new[] { "--eta {x}: bad" }, StringLiterals("throw new DdpmException($\"--eta {x}: bad\"); // --other").ToArray());
        Assert.Empty(StringLiterals("    /// <summary>pytorch-fid --dims 64</summary>"));
        Assert.Empty(StringLiterals("    for (int i = n; i > 0; --i) { } // --i"));
        Assert.Equal(new[] { "a", "--b" }, StringLiterals("f(\"a\", '\"', \"--b\")").ToArray());
    }

    [Fact]
    public void NoStringInTheLibraryNamesACommandLineFlag()
    {
        var src = Path.Combine(TestUtil.RepoRoot(), "src", "Ddpm");
        var found = new List<string>();
        foreach (var file in Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories))
        {
            if (file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)) continue;
            var lines = File.ReadAllLines(file);
            for (int i = 0; i < lines.Length; i++)
                if (StringLiterals(lines[i]).Any(s => Flag().IsMatch(s)))
                    found.Add($"{Path.GetRelativePath(src, file)}:{i + 1}: {lines[i].Trim()}");
        }
        Assert.True(found.Count == 0, "library strings that name CLI flags:\n" + string.Join("\n", found));
    }
}

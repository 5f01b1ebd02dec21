using Ddpm.Tests.Sampling;

namespace Ddpm.Tests.Cli;

/// <summary>
/// <c>ddpm sample</c> refuses impossible arguments with one line before it prints its header or loads the checkpoint,
/// and writes nothing: an empty --output (once written into the current folder), an image extension other than .png
/// (once created a folder named x.jpg), and a count or batch size below 1 (once refused after the header).
/// </summary>
[Collection(CliOutputCollection.Name)]
public class SampleArgumentTests : OneThreadTest
{
    private readonly TinyRun _run;
    public SampleArgumentTests(TinyRun run) => _run = run;

    private (int Code, string Out, string Err) Sample(params string[] extra) =>
        TestUtil.Cli(new[] { "sample", "-c", _run.Run, "--no-progress", "--device", "cpu", "--threads", "1" }.Concat(extra).ToArray());

    [Theory]
    [InlineData("-n", "-1", "error: --count -1: must be at least 1")]
    [InlineData("-n", "0", "error: --count 0: must be at least 1")]
    [InlineData("--batch-size", "0", "error: --batch-size 0: must be at least 1")]
    public void ACountBelowOneIsRefusedBeforeTheHeader(string flag, string value, string expected)
    {
        var dir = TestUtil.TempDir();
        var (code, output, err) = Sample(flag, value, "-o", Path.Combine(dir, "grid.png"));
        Assert.Equal(1, code);
        Assert.Equal(expected, err.Trim());
        Assert.Equal("", output); // no "checkpoint ... (step N), -1 images" line first
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir));
    }

    [Theory]
    [InlineData("")]
    [InlineData("  ")]
    public void AnEmptyOutputIsRefused(string output)
    {
        var (code, stdout, err) = Sample("-n", "2", "-o", output);
        Assert.Equal(1, code);
        Assert.Equal("error: --output is empty: give grid.png for one grid, or a folder for one PNG per image", err.Trim());
        Assert.Equal("", stdout);
    }

    [Theory]
    [InlineData("x.jpg")]
    [InlineData("x.JPEG")]
    [InlineData("x.webp")]
    public void AnotherImageExtensionIsRefusedAndNoFolderIsMade(string name)
    {
        var dir = TestUtil.TempDir();
        string path = Path.Combine(dir, name);
        var (code, stdout, err) = Sample("-n", "2", "-o", path);
        Assert.Equal(1, code);
        Assert.Equal($"error: --output {path}: sample writes PNG only; give a .png file for one grid, or a folder without an image extension", err.Trim());
        Assert.Equal("", stdout);
        Assert.False(Directory.Exists(path) || File.Exists(path));
    }

    [Fact]
    public void APathWithoutAnImageExtensionIsAFolderOfPngs()
    {
        string folder = Path.Combine(TestUtil.TempDir(), "out.v2");
        var (code, _, err) = Sample("-n", "2", "-o", folder);
        Assert.True(code == 0, err);
        Assert.Equal(new[] { "sample_00000.png", "sample_00001.png" },
            Directory.GetFiles(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }
}

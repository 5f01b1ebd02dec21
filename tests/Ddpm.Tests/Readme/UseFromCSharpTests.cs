using Ddpm.Imaging;
using Ddpm.Metrics.Classifier;
using Ddpm.Metrics.Evaluation;
using static TorchSharp.torch;

namespace Ddpm.Tests.Readme;

/// <summary>
/// The README's "Use it from C#" program: its code is the marked region of UseFromCSharpExample.cs, character for
/// character, and it runs (3 training steps, 16 samples) to a grid and a figure that agree with each other.
/// </summary>
public class UseFromCSharpTests
{
    private const string Begin = "// README example begins";
    private const string End = "// README example ends";

    private static string ExampleRegion()
    {
        var lines = File.ReadAllLines(Path.Combine(TestUtil.RepoRoot(), "tests", "Ddpm.Tests", "Readme", "UseFromCSharpExample.cs"));
        int begin = Array.IndexOf(lines, Begin), end = Array.IndexOf(lines, End);
        Assert.True(begin >= 0 && end > begin, $"markers '{Begin}' and '{End}' not found in order");
        return string.Join('\n', lines[(begin + 1)..end]);
    }

    /// <summary>The first ```csharp block after the heading "## Use it from C#".</summary>
    private static string ReadmeBlock()
    {
        var lines = File.ReadAllLines(Path.Combine(TestUtil.RepoRoot(), "README.md"));
        int heading = Array.IndexOf(lines, "## Use it from C#");
        Assert.True(heading >= 0, "README.md has no section '## Use it from C#'");
        int open = Array.IndexOf(lines, "```csharp", heading);
        Assert.True(open > heading, "no ```csharp block after '## Use it from C#'");
        int close = Array.IndexOf(lines, "```", open + 1);
        Assert.True(close > open, "the ```csharp block is not closed");
        return string.Join('\n', lines[(open + 1)..close]);
    }

    [Fact]
    public void TheReadmeShowsExactlyTheCompiledExample() => Assert.Equal(ExampleRegion(), ReadmeBlock());

    [Fact]
    public void TheExampleTrainsSamplesAGridAndComputesTheDistance()
    {
        var runDir = Path.Combine(TestUtil.TempDir(), "run");
        var digits = Path.Combine(TestUtil.RepoRoot(), "data", "mnist-10k");
        double distance = UseFromCSharp.Run(digits, runDir, steps: 3, count: 16);
        Assert.True(double.IsFinite(distance) && distance > 0, $"distance {distance}");

        // The run folder: the trainer's own final grid and a checkpoint.
        Assert.True(File.Exists(Path.Combine(runDir, "samples", "final.png")));
        Assert.NotEmpty(Directory.GetDirectories(Path.Combine(runDir, "checkpoints")));

        // grid.png: 16 grey cells of 28 x 28 in 8 columns and 2 rows, 2 pixels apart and around: 8 * 30 + 2 by 2 * 30 + 2.
        using var scope = NewDisposeScope();
        var grid = ImageIO.LoadPng(Path.Combine(runDir, "grid.png"));
        Assert.Equal(new long[] { 1, 62, 242 }, grid.shape);

        // The figure is the distance of the images in that grid: cut out of the PNG (the classifier sees 8-bit pixels,
        // which is what a PNG stores), they give the same distance to the same 1,000 real digits.
        var cells = stack(Enumerable.Range(0, 16).Select(k => grid.narrow(1, 2 + k / 8 * 30, 28).narrow(2, 2 + k % 8 * 30, 28)));
        using var classifier = ClassifierFeatureExtractor.Load("mnist");
        using var fromPng = ImageSource.FromTensor(cells, "grid.png");
        using var real = ImageSource.Open(digits, new ImageSourceOptions { Count = 1000 });
        var again = DistanceEvaluation.Run(classifier, fromPng, real, new DistanceOptions());
        Assert.Equal(distance, again.Distance, 9);
    }
}

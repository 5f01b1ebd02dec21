using System.Runtime;
using System.Text.Json;

namespace Ddpm.Tests;

/// <summary>
/// Programs built here run with blocking garbage collection (build/BlockingGc.targets): with concurrent collection a
/// temporary TorchSharp Scalar can be finalized while libtorch is reading it.
/// </summary>
public class BlockingGcTests
{
    [Fact]
    public void TheCliIsConfiguredForBlockingCollection()
    {
        var config = Path.ChangeExtension(TestUtil.CliDll(), ".runtimeconfig.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(config));
        var concurrent = doc.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties").GetProperty("System.GC.Concurrent");
        Assert.Equal(JsonValueKind.False, concurrent.ValueKind);
    }

    [Fact]
    public void TheTestsRunWithBlockingCollection()
    {
        // Batch is the latency mode of a process whose concurrent collection is off (Interactive when it is on).
        Assert.Equal(GCLatencyMode.Batch, GCSettings.LatencyMode);
    }

    [Fact]
    public void ThePackageCarriesTheSettingToItsUsers()
    {
        var root = TestUtil.RepoRoot();
        var targets = File.ReadAllText(Path.Combine(root, "build", "package", "Ddpm.targets"));
        Assert.Contains("BlockingGc.targets", targets);
        var csproj = File.ReadAllText(Path.Combine(root, "src", "Ddpm", "Ddpm.csproj"));
        Assert.Contains("../../build/BlockingGc.targets", csproj);
        Assert.Contains("<ConcurrentGarbageCollection Condition=\"'$(ConcurrentGarbageCollection)' == ''\">false</ConcurrentGarbageCollection>",
            File.ReadAllText(Path.Combine(root, "build", "BlockingGc.targets")));
    }
}

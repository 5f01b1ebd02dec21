using System.Text;
using Ddpm.IO;
using static TorchSharp.torch;

namespace Ddpm.Tests.Metrics.Inception;

/// <summary>
/// Reading torch.save state dicts. The fixtures were written by Fixtures/make_pth_fixtures.py with CPython's pickle
/// module, the way torch.save writes them (legacy stream format and zip format); its docstring lists their contents.
/// </summary>
public class PthFileTests
{
    private static string Fixture(string name) =>
        Path.Combine(TestUtil.RepoRoot(), "tests", "Ddpm.Tests", "Metrics", "Inception", "Fixtures", name);

    [Theory]
    [InlineData("legacy_state_dict.pth")]
    [InlineData("zip_state_dict.pth")]
    public void ReadsTheFixtureStateDict(string file)
    {
        var sd = PthFile.Read(Fixture(file));
        try
        {
            Assert.Equal(new[] { "conv.weight", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked", "fc.weight", "extra.double" }, sd.Keys.ToArray());
            var w = sd["conv.weight"];
            Assert.Equal(new long[] { 2, 1, 1, 3 }, w.shape);
            Assert.Equal(ScalarType.Float32, w.dtype);
            Assert.Equal(new[] { -1f, -0.5f, 0f, 0.5f, 1f, 1.5f }, w.data<float>().ToArray());
            // Two views of one storage, at offsets 1 and 3.
            Assert.Equal(new[] { 11f, 12f }, sd["bn.running_mean"].data<float>().ToArray());
            Assert.Equal(new[] { 13f, 14f }, sd["bn.running_var"].data<float>().ToArray());
            var n = sd["bn.num_batches_tracked"];
            Assert.Equal(ScalarType.Int64, n.dtype);
            Assert.Empty(n.shape);
            Assert.Equal(7L, n.item<long>());
            // A transposed view: strides (1, 2), so element [i, j] is storage[2 j + i].
            var fc = sd["fc.weight"];
            Assert.Equal(new long[] { 2, 3 }, fc.shape);
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 3; j++)
                    Assert.Equal(2 * j + i, fc[i, j].item<float>());
            Assert.Equal(ScalarType.Float64, sd["extra.double"].dtype);
            Assert.Equal(new[] { 1.5, -2.25 }, sd["extra.double"].data<double>().ToArray());
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
        }
    }

    [Fact]
    public void NotATorchFileIsAOneLineError()
    {
        using var tmp = new Ddpm.Tests.Data.TempDir();
        var dir = tmp.Path;
        var path = Path.Combine(dir, "x.pth");
        File.WriteAllText(path, "hello, not a pickle");
        var e = Assert.Throws<DdpmException>(() => PthFile.Read(path));
        Assert.Contains(path, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        // A truncated legacy file.
        var bytes = File.ReadAllBytes(Fixture("legacy_state_dict.pth"));
        File.WriteAllBytes(path, bytes[..(bytes.Length - 10)]);
        Assert.Throws<DdpmException>(() => PthFile.Read(path));
    }

    [Fact]
    public void APickleThatCallsAnythingElseIsRefused()
    {
        // pickle.dumps(os.system('echo hi')) in spirit: GLOBAL posix.system, a string, TUPLE1, REDUCE, STOP.
        var ms = new MemoryStream();
        ms.Write(new byte[] { 0x80, 0x02 });
        ms.Write(Encoding.ASCII.GetBytes("cposix\nsystem\n"));
        ms.Write(new byte[] { (byte)'q', 0, (byte)'X', 7, 0, 0, 0 });
        ms.Write(Encoding.ASCII.GetBytes("echo hi"));
        ms.Write(new byte[] { (byte)'q', 1, 0x85, (byte)'q', 2, (byte)'R', (byte)'q', 3, (byte)'.' });
        using var tmp = new Ddpm.Tests.Data.TempDir();
        var path = tmp.File("evil.pth");
        File.WriteAllBytes(path, ms.ToArray());
        var e = Assert.Throws<DdpmException>(() => PthFile.Read(path));
        Assert.Contains("posix.system", e.Message);
        Assert.Contains("refused", e.Message);
    }
}

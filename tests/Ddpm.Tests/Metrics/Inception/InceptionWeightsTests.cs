using System.Text;
using Ddpm.Metrics.Inception;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.Tests.Metrics.Inception;

/// <summary>Finding, loading and verifying the FID Inception weights (random weights stand in for the real file).</summary>
[Collection(InceptionCollection.Name)]
public class InceptionWeightsTests
{
    private readonly InceptionForwardFixture _f;

    public InceptionWeightsTests(InceptionForwardFixture f) => _f = f;

    private static Func<string, string?> Env(params (string Key, string Value)[] vars) =>
        k => vars.FirstOrDefault(v => v.Key == k).Value;

    private static void AssertSameState(nn.Module expected, nn.Module actual)
    {
        var a = expected.state_dict();
        var b = actual.state_dict();
        foreach (var (k, t) in a)
        {
            if (k.EndsWith("num_batches_tracked", StringComparison.Ordinal)) continue;
            Assert.True(t.to_type(ScalarType.Float32).allclose(b[k], rtol: 0, atol: 0), k);
        }
    }

    [Fact]
    public void SafetensorsRoundTrip()
    {
        using var tmp = new Ddpm.Tests.Data.TempDir();
        var path = tmp.File(InceptionWeights.SafetensorsFileName);
        _f.Net.save_safetensors(path); // with the 94 num_batches_tracked counters
        using (var loaded = InceptionWeights.LoadNetwork(path)) AssertSameState(_f.Net, loaded);
    }

    [Fact]
    public void PthRoundTripWithAndWithoutBatchCounters()
    {
        // PyBridge writes the zip format of torch >= 1.6 (deflated, unlike torch, and slowly: so one Inception block
        // stands in for the whole net here; the loader checks any module's state dict the same way).
        using var tmp = new Ddpm.Tests.Data.TempDir();
        using var block = new InceptionA(192, poolFeatures: 32);
        manual_seed(3);
        using (no_grad())
            foreach (var p in block.parameters()) p.uniform_(-1, 1);
        var counters = block.state_dict().Keys.Where(k => k.EndsWith(".num_batches_tracked", StringComparison.Ordinal)).ToList();
        Assert.Equal(7, counters.Count);
        foreach (var (name, skip) in new[] { ("with.pth", new List<string>()), ("without.pth", counters) })
        {
            block.save_py(tmp.File(name), skip: skip);
            using var loaded = new InceptionA(192, poolFeatures: 32);
            InceptionWeights.Load(loaded, tmp.File(name));
            AssertSameState(block, loaded);
        }
    }

    private static Dictionary<string, Tensor> StateOf(nn.Module m) =>
        m.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);

    [Fact]
    public void WrongShapeMissingOrExtraKeyIsAOneLineErrorAndChangesNothing()
    {
        using var target = new FidInceptionV3();
        using var first = target.state_dict()["Conv2d_1a_3x3.conv.weight"].clone();

        var sd = StateOf(_f.Net);
        sd["Mixed_6b.branch7x7_2.conv.weight"] = zeros(128, 128, 7, 1); // the 1x7 kernel turned round
        var e = Assert.Throws<DdpmException>(() => InceptionWeights.Apply(target, sd, "w.pth"));
        Assert.Equal("w.pth: tensor Mixed_6b.branch7x7_2.conv.weight has shape [128, 128, 7, 1], expected [128, 128, 1, 7]: not the FID Inception weights (pt_inception-2015-12-05-6726825d.pth)", e.Message);

        sd = StateOf(_f.Net);
        sd.Remove("Mixed_7c.bn.running_var".Replace("Mixed_7c.", "Mixed_7c.branch_pool."));
        e = Assert.Throws<DdpmException>(() => InceptionWeights.Apply(target, sd, "w.pth"));
        Assert.StartsWith("w.pth: tensor Mixed_7c.branch_pool.bn.running_var [192] missing", e.Message);

        sd = StateOf(_f.Net);
        sd["AuxLogits.fc.weight"] = zeros(1000, 768); // torchvision's weights have an aux classifier
        e = Assert.Throws<DdpmException>(() => InceptionWeights.Apply(target, sd, "w.pth"));
        Assert.StartsWith("w.pth: unexpected tensor AuxLogits.fc.weight", e.Message);

        // None of the failed loads touched the network.
        Assert.True(first.allclose(target.state_dict()["Conv2d_1a_3x3.conv.weight"], rtol: 0, atol: 0));
        Assert.False(first.allclose(_f.Net.state_dict()["Conv2d_1a_3x3.conv.weight"]));
    }

    [Fact]
    public void AFileOfOtherWeightsNamesTheFirstMissingKey()
    {
        using var tmp = new Ddpm.Tests.Data.TempDir();
        var path = tmp.File("other.safetensors");
        using (var lin = nn.Linear(2, 3)) lin.save_safetensors(path);
        using var net = new FidInceptionV3();
        var e = Assert.Throws<DdpmException>(() => InceptionWeights.Load(net, path));
        Assert.StartsWith($"{path}: tensor Conv2d_1a_3x3.conv.weight [32, 3, 3, 3] missing", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void ResolveLooksAtThePathThenTheEnvironmentThenTheCache()
    {
        using var tmp = new Ddpm.Tests.Data.TempDir();
        var dir = tmp.Path;
        var given = Path.Combine(dir, "given.pth");
        File.WriteAllText(given, "x");
        var fromEnv = Path.Combine(dir, "env.pth");
        File.WriteAllText(fromEnv, "x");
        var cacheRoot = Path.Combine(dir, "xdg");
        var cached = Path.Combine(cacheRoot, "ddpm", InceptionWeights.FileName);
        Directory.CreateDirectory(Path.GetDirectoryName(cached)!);
        File.WriteAllText(cached, "x");

        var all = Env((InceptionWeights.EnvironmentVariable, fromEnv), ("XDG_CACHE_HOME", cacheRoot));
        Assert.Equal(given, InceptionWeights.Resolve(given, all));
        Assert.Equal(fromEnv, InceptionWeights.Resolve(null, all));
        Assert.Equal(cached, InceptionWeights.Resolve(null, Env(("XDG_CACHE_HOME", cacheRoot))));
        // Without XDG_CACHE_HOME the cache is ~/.cache/ddpm; the safetensors copy counts too.
        var home = Path.Combine(dir, "home");
        var st = Path.Combine(home, ".cache", "ddpm", InceptionWeights.SafetensorsFileName);
        Directory.CreateDirectory(Path.GetDirectoryName(st)!);
        File.WriteAllText(st, "x");
        Assert.Equal(st, InceptionWeights.Resolve(null, Env(("HOME", home))));

        var missing = Path.Combine(dir, "nope.pth");
        Assert.Contains(missing, Assert.Throws<DdpmException>(() => InceptionWeights.Resolve(missing, all)).Message);
        var e = Assert.Throws<DdpmException>(() => InceptionWeights.Resolve(null, Env((InceptionWeights.EnvironmentVariable, missing))));
        Assert.Contains(missing, e.Message);
        Assert.Contains("DDPM_INCEPTION_WEIGHTS", e.Message);
    }

    [Fact]
    public void NoWeightsAnywhereSaysWhereToGetThemAndWhereToPutThem()
    {
        using var tmp = new Ddpm.Tests.Data.TempDir();
        var empty = tmp.File("xdg");
        var e = Assert.Throws<DdpmException>(() => InceptionWeights.Resolve(null, Env(("XDG_CACHE_HOME", empty))));
        Assert.Contains("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth", e.Message);
        Assert.Contains("DDPM_INCEPTION_WEIGHTS", e.Message);
        Assert.Contains(Path.Combine(empty, "ddpm"), e.Message);
        Assert.Contains("pass its path", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Sha256IsCheckedAndAgreesWithTheHubNameConvention()
    {
        // FIPS 180-2 test vector: SHA-256("abc").
        const string abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        using var tmp = new Ddpm.Tests.Data.TempDir();
        var path = tmp.File("abc.bin");
        File.WriteAllText(path, "abc");
        Assert.Equal(abc, InceptionWeights.ComputeSha256(path));
        InceptionWeights.CheckSha256(abc.ToUpperInvariant(), abc, path);
        var e = Assert.Throws<DdpmException>(() => InceptionWeights.VerifyFile(path));
        Assert.Contains(abc, e.Message);
        Assert.Contains(InceptionWeights.Sha256, e.Message);

        // torch hub: the hex digits in the name start the file's SHA-256.
        Assert.Equal("6726825d", InceptionWeights.HubHashPrefix(InceptionWeights.FileName));
        Assert.StartsWith(InceptionWeights.HubHashPrefix(InceptionWeights.FileName)!, InceptionWeights.Sha256);
        Assert.Equal(64, InceptionWeights.Sha256.Length);
        Assert.EndsWith("/" + InceptionWeights.FileName, InceptionWeights.Url);
    }

    [Fact]
    public async Task DownloadCopyHashesAndReportsProgress()
    {
        var source = new MemoryStream(Encoding.ASCII.GetBytes("abc"));
        var sink = new MemoryStream();
        var seen = new List<DownloadProgress>();
        var hash = await InceptionWeights.CopyHashingAsync(source, sink, 3, new Ddpm.Runtime.SyncProgress<DownloadProgress>(seen.Add), default);
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hash);
        Assert.Equal("abc", Encoding.ASCII.GetString(sink.ToArray()));
        Assert.Equal(new DownloadProgress(3, 3), seen[^1]);
    }

    [Fact]
    public async Task AFailedDownloadLeavesNothingBehind()
    {
        // A server that answers 404: no network needed.
        using var tmp = new Ddpm.Tests.Data.TempDir();
        var dir = tmp.Path;
        using var http = new HttpClient(new StatusHandler(System.Net.HttpStatusCode.NotFound));
        var e = await Assert.ThrowsAsync<DdpmException>(() => InceptionWeights.DownloadAsync(dir, null, http));
        Assert.Contains("HTTP 404", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(dir));

        // A server that sends other bytes: the hash check refuses them and the name stays free.
        using var wrong = new HttpClient(new StatusHandler(System.Net.HttpStatusCode.OK, "not the weights"));
        e = await Assert.ThrowsAsync<DdpmException>(() => InceptionWeights.DownloadAsync(dir, null, wrong));
        Assert.Contains("SHA-256", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(dir));
    }

    private sealed class StatusHandler(System.Net.HttpStatusCode status, string body = "") : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct) =>
            Task.FromResult(new HttpResponseMessage(status) { Content = new StringContent(body) });
    }
}

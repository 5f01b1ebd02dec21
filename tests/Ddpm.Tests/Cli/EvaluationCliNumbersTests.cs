using System.Text.Json;
using Ddpm.Data;
using Ddpm.Metrics;
using Ddpm.Tests.Metrics.Inception;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.Tests.Cli;

/// <summary>
/// <c>ddpm distance</c> and <c>ddpm fid</c> report numbers that follow from their inputs: a closed-form Frechet distance
/// between two statistics files, and real-vs-real floors of sets built from two images X and Y, whose seeded halves
/// (the permutations tests/Ddpm.Tests/Data/Fixtures/shuffle_reference.py prints) make the floor a known multiple of
/// the distance between X and Y in any feature space. Also the options no other test passes: <c>--no-floor</c>,
/// <c>--floor-data</c>, <c>fid --floor</c> and <c>fid --isc</c>.
/// </summary>
public class EvaluationCliNumbersTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => TestUtil.Cli(args);

    private static JsonElement RunJson(string json, params string[] args)
    {
        var (code, output, err) = Run(args.Concat(new[] { "-o", json, "--no-progress" }).ToArray());
        Assert.True(code == 0, err + output);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        return doc.RootElement.Clone();
    }

    /// <summary>An IDX file of 8x8 grey images: <paramref name="pattern"/>[i] picks image i among <paramref name="images"/>.</summary>
    private static string WriteIdx(string dir, string name, Tensor images, params int[] pattern)
    {
        var path = Path.Combine(dir, name + "-images-idx3-ubyte");
        using var picked = images.index_select(0, tensor(pattern.Select(i => (long)i).ToArray()));
        Idx.WriteImages(path, picked, gzip: false);
        return path;
    }

    [Fact]
    public void DistanceBetweenTwoStatisticsFilesIsTheClosedForm()
    {
        // reference.md section 4: mu equal, S1 = diag(4, 1), S2 = [[2, 1], [1, 2]] gives 9 - 2 sqrt(10 + 4 sqrt 3) =
        // 0.77122045; the means here differ by (1, 3), adding 10.
        var dir = TestUtil.TempDir();
        var a = Path.Combine(dir, "a.npz");
        var b = Path.Combine(dir, "b.npz");
        new FeatureStatistics(new[] { 1.0, 2.0 }, new double[,] { { 4, 0 }, { 0, 1 } }).SaveNpz(a);
        new FeatureStatistics(new[] { 0.0, -1.0 }, new double[,] { { 2, 1 }, { 1, 2 } }).SaveNpz(b);
        double expected = 10 + 9 - 2 * Math.Sqrt(10 + 4 * Math.Sqrt(3));
        Assert.Equal(10.77122045, expected, 8);

        var r = RunJson(Path.Combine(dir, "d.json"), "distance", a, b, "--no-floor");
        Assert.Equal(expected, r.GetProperty("distance").GetDouble(), 10);
        Assert.Equal(2, r.GetProperty("dims").GetInt32());
        // --no-floor: no floor and no reason for its absence.
        Assert.False(r.TryGetProperty("floor", out _));
        Assert.False(r.TryGetProperty("floor_unavailable", out _));
        // Without it the floor is attempted and explained: statistics carry no image count.
        var withFloor = RunJson(Path.Combine(dir, "e.json"), "distance", b, a);
        Assert.Equal(expected, withFloor.GetProperty("distance").GetDouble(), 10);
        Assert.Contains("count is unknown", withFloor.GetProperty("floor_unavailable").GetString());
    }

    [Fact]
    public void DistanceFloorsAreTheClosedFormOfTheSeededHalves()
    {
        // Features of identical images are identical, so for sets of copies of X and Y only f(X) - f(Y) = d matters:
        // - six X against six Y: both covariances are 0, the distance is |d|^2;
        // - the floor of 6 from XY12 = (X x 6, Y x 6) with --seed 3 splits the permutation [11, 0, 4, 5, 3, 7 | 9, 1, 8,
        //   10, 6, 2]: the first half holds k = 4 copies of X (0, 3, 4, 5), the second 2. The means differ by
        //   (4 - 2) / 6 d = d / 3 and both covariances are k (6 - k) / (6 * 5) d d^T = 8/30 d d^T, which cancel, so the
        //   floor is |d|^2 / 9.
        var dir = TestUtil.TempDir();
        using var pool = TestUtil.TinyData(count: 8, size: 8, seed: 9).Images;
        string xs = WriteIdx(dir, "xs", pool, 0, 0, 0, 0, 0, 0);
        string ys = WriteIdx(dir, "ys", pool, 1, 1, 1, 1, 1, 1);
        string xy12 = WriteIdx(dir, "xy12", pool, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1);
        string generated = WriteIdx(dir, "gen", pool, 2, 3, 4, 5, 6, 7);

        var pure = RunJson(Path.Combine(dir, "1.json"), "distance", xs, ys, "--no-floor");
        double d2 = pure.GetProperty("distance").GetDouble();
        Assert.True(d2 > 1e-3, $"two different images must have different features: {d2}");
        Assert.False(pure.TryGetProperty("floor", out _));
        var (code, output, err) = Run("distance", xs, ys, "-o", Path.Combine(dir, "2.json"), "--no-progress");
        Assert.True(code == 0, err);
        Assert.Contains("floor: not computed", output); // without --no-floor: attempted, but B has 6 < 12 images

        // The floor from B (the default) and from --floor-data give the same closed form. Features are float32, so
        // identical images agree to round-off and the covariances cancel to about 1e-6 relative.
        var fromB = RunJson(Path.Combine(dir, "3.json"), "distance", generated, xy12, "--seed", "3");
        var fromData = RunJson(Path.Combine(dir, "4.json"), "distance", generated, ys, "--floor-data", xy12, "--seed", "3");
        foreach (var r in new[] { fromB, fromData })
        {
            var floor = r.GetProperty("floor");
            Assert.Equal(xy12, floor.GetProperty("data").GetString());
            Assert.Equal(6, floor.GetProperty("count").GetInt64());
            double got = floor.GetProperty("distance").GetDouble();
            Assert.True(Math.Abs(got - d2 / 9) <= 1e-5 * d2, $"floor {got:R}, expected |d|^2 / 9 = {d2 / 9:R}");
        }
    }

    [Fact]
    public void FidFloorAndFloorDataFollowFromTheSeededHalves()
    {
        // A = (X, Y), F = (X, X, Y, Y). Both have mean (f(X) + f(Y)) / 2; their covariances are d d^T / 2 and
        // d d^T / 3 (d = f(X) - f(Y)), rank one, so Tr sqrt(S_A S_F) = |d|^2 / sqrt 6 and
        // FID(A, F) = |d|^2 (1/2 + 1/3 - 2 / sqrt 6). The floor of 2 from F with --seed 2 splits the permutation
        // [2, 3 | 1, 0]: (Y, Y) against (X, X), whose distance is |d|^2. So floor / FID = 1 / (5/6 - 2 / sqrt 6) = 59.39,
        // whatever the network's weights (random here).
        var dir = TestUtil.TempDir();
        var weights = Path.Combine(dir, "inception.safetensors");
        using (var net = InceptionTestNet.Create()) net.save_safetensors(weights);
        using var pool = TestUtil.TinyData(count: 2, size: 8, seed: 12).Images;
        string a = WriteIdx(dir, "a", pool, 0, 1);
        string f = WriteIdx(dir, "f", pool, 0, 0, 1, 1);
        string[] common = { "--inception-weights", weights, "--dims", "64", "--seed", "2" };

        var withFloor = RunJson(Path.Combine(dir, "1.json"), new[] { "fid", a, f, "--floor", "--isc" }.Concat(common).ToArray());
        double fid = withFloor.GetProperty("distance").GetDouble();
        var floor = withFloor.GetProperty("floor");
        Assert.Equal(f, floor.GetProperty("data").GetString());
        Assert.Equal(2, floor.GetProperty("count").GetInt64());
        double ratio = floor.GetProperty("distance").GetDouble() / fid;
        // FID here is a difference of terms 50 times larger, each carrying the float32 features' round-off: 1e-4.
        Assert.True(Math.Abs(ratio - 1 / (5.0 / 6 - 2 / Math.Sqrt(6))) <= 1e-4 * ratio, $"floor / FID = {ratio:R}");
        // --isc scores each side in 10 splits: two and four images cannot be split so, and no score is reported.
        Assert.False(withFloor.GetProperty("a").TryGetProperty("score", out _));

        // --floor-data: the floor comes from F although B (statistics, no images) cannot give one; the same seeded halves
        // of the same images give the same floor. Without --floor or --floor-data there is no floor at all.
        var stats = Path.Combine(dir, "b.npz");
        new FeatureStatistics(new double[64], new double[64, 64]).SaveNpz(stats);
        var fromData = RunJson(Path.Combine(dir, "2.json"), new[] { "fid", a, stats, "--floor-data", f }.Concat(common).ToArray());
        Assert.Equal(f, fromData.GetProperty("floor").GetProperty("data").GetString());
        Assert.Equal(floor.GetProperty("distance").GetDouble(), fromData.GetProperty("floor").GetProperty("distance").GetDouble(), 12);
        var none = RunJson(Path.Combine(dir, "3.json"), new[] { "fid", stats, stats }.Concat(common).ToArray());
        Assert.False(none.TryGetProperty("floor", out _));
        Assert.False(none.TryGetProperty("floor_unavailable", out _));
    }
}

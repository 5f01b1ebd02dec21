using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Ddpm.Metrics;
using Ddpm.Metrics.Inception;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ddpm.Tests.Metrics.Inception;

/// <summary>
/// The project's FID path against pytorch-fid's own output (Fixtures/pytorch-fid: activations and FID computed by
/// pytorch-fid's code in PyTorch 1.13 on weights defined by an integer rule). The folders hold 32x32 RGB, 28x28 grey and
/// 48x32 RGB PNGs; pytorch-fid takes each file at its own size and stretches it to 299x299, so the grey and the
/// non-square folders fail if the images are cropped or resampled on the way (as the training loader does).
/// </summary>
public class PytorchFidTests : IClassFixture<PytorchFidFixture>
{
    /// <summary>
    /// Features may differ from pytorch-fid's by float32 round-off only: libtorch 2.10 and PyTorch 1.13 sum the
    /// convolutions in different orders through 94 layers (and the resize to 299x299 likewise), each sum good to a few
    /// units of 2^-24 = 6e-8 relative. Measured: at most 3.4e-7 of the largest feature (rgb32-a, 2048 dims), 1.4e-7 to
    /// 2.8e-7 elsewhere; the bound leaves a factor 3.
    /// </summary>
    private const double FeatureTolerance = 1e-6;

    private readonly PytorchFidFixture _f;
    private readonly ITestOutputHelper _log;

    public PytorchFidTests(PytorchFidFixture f, ITestOutputHelper log)
    {
        _f = f;
        _log = log;
    }

    [Fact]
    public void RuleWeightsMatchTheReadmesCheckValues()
    {
        _log.WriteLine($"rule weights built, loaded and written in {_f.WeightsSeconds:F1} s; features in {_f.FeatureSeconds:F1} s");
        // README, "The weights rule": 566 tensors; the first key, Conv2d_1a_3x3.bn.bias, starts -0.0912944824,
        // -0.0452859662, 0.0014694831 (printed to 10 decimals, so within 5e-11 of the float32 values).
        Assert.Equal(566, _f.TensorCount);
        Assert.Equal("Conv2d_1a_3x3.bn.bias", _f.FirstKey);
        double[] check = { -0.0912944824, -0.0452859662, 0.0014694831 };
        for (int k = 0; k < 3; k++)
            Assert.True(Math.Abs(_f.FirstValues[k] - check[k]) <= 5e-11, $"value {k}: {_f.FirstValues[k]:R} vs {check[k]}");
    }

    [Theory]
    [InlineData("rgb32-a", 2048)]
    [InlineData("rgb32-b", 2048)]
    [InlineData("grey28", 2048)]
    [InlineData("rgb48x32", 2048)]
    [InlineData("rgb32-a", 64)]
    [InlineData("rgb32-b", 64)]
    [InlineData("grey28", 64)]
    [InlineData("rgb48x32", 64)]
    public void FeaturesOfEachFolderMatchPytorchFid(string folder, int dims)
    {
        var reference = PytorchFidFixture.Reference(folder, dims);
        var ours = _f.Features[(folder, dims)];
        Assert.Equal(reference.Shape, ours.shape);
        var values = ours.data<float>().ToArray();
        double scale = reference.Data.Max(Math.Abs), worst = 0;
        for (int i = 0; i < values.Length; i++) worst = Math.Max(worst, Math.Abs(values[i] - reference.Data[i]));
        _log.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0} d{1}: max |diff| {2:E2}, largest |feature| {3:F4}, relative {4:E2}",
            folder, dims, worst, scale, worst / scale));
        Assert.True(worst <= FeatureTolerance * scale, $"{folder} d{dims}: max |diff| {worst:E3} vs features up to {scale:F4}");
    }

    /// <summary>
    /// FID between rgb32-a and rgb32-b, as <c>ddpm fid</c> computes it from our features, against pytorch-fid's fid.json.
    /// With 12 images per side both covariances have rank 11, so sigma1 sigma2 has 2037 (at 2048 dims) or 53 (at 64)
    /// zero eigenvalues, which a matrix square root meets as round-off of order 1e-16 of the largest, each adding the
    /// square root of that to the trace: over 2037 of them, some 1e-5 relative. pytorch-fid's scipy sqrtm and the
    /// project's eigendecompositions both carry that error. The exact value comes from the low-rank identity
    /// (<see cref="LowRankFid"/>), against which fid.json is off by 1.35e-5 relative at 2048 dims (1.12e-3) and 2.6e-7 at
    /// 64 (measured), so the tolerance is 2e-5 relative at 2048 dims and 1e-6 at 64. The features' own share is checked
    /// apart, through the exact identity on both sides (measured 3.7e-8 and 1.1e-8 relative, bound 1e-6).
    /// </summary>
    [Theory]
    [InlineData(2048, 2e-5)]
    [InlineData(64, 1e-6)]
    public void FidBetweenTheRgbFoldersMatchesPytorchFid(int dims, double tolerance)
    {
        double expected = ExpectedFid(dims);
        var a = _f.Features[("rgb32-a", dims)];
        var b = _f.Features[("rgb32-b", dims)];
        double ours = FrechetDistance.Compute(FeatureStatistics.FromFeatures(a), FeatureStatistics.FromFeatures(b));
        double exactOurs = LowRankFid(a, b);
        double exactTheirs;
        using (var ra = ReferenceTensor("rgb32-a", dims))
        using (var rb = ReferenceTensor("rgb32-b", dims))
            exactTheirs = LowRankFid(ra, rb);
        _log.WriteLine(string.Format(CultureInfo.InvariantCulture,
            "d{0}: fid.json {1:R}; ours {2:R} (diff {3:E2}, relative {4:E2}); exact on ours {5:R}, on theirs {6:R} (fid.json - exact: {7:E2})",
            dims, expected, ours, ours - expected, (ours - expected) / expected, exactOurs, exactTheirs, expected - exactTheirs));
        Assert.True(Math.Abs(exactTheirs - expected) <= tolerance * expected, $"exact on pytorch-fid's activations {exactTheirs:R} vs fid.json {expected:R}");
        Assert.True(Math.Abs(exactOurs - exactTheirs) <= 1e-6 * expected, $"features: exact FID {exactOurs:R} on ours vs {exactTheirs:R} on theirs");
        Assert.True(Math.Abs(ours - exactOurs) <= tolerance * expected, $"distance: {ours:R} vs exact {exactOurs:R}");
        Assert.True(Math.Abs(ours - expected) <= tolerance * expected, $"{ours:R} vs fid.json {expected:R}");
    }

    /// <summary>
    /// Features without logits (what <c>ddpm fid</c> without --isc and <c>ddpm stats</c> use, running only the first
    /// layers for 64 dims) are those of the default extractor with logits, bit for bit: the tap is computed the same way
    /// whatever is asked for beyond it. Without logits the extractor reports no classes, as the interface requires.
    /// </summary>
    [Fact]
    public void FeaturesWithoutLogitsAreTheFeaturesWithLogits()
    {
        using var scope = NewDisposeScope();
        using var source = Ddpm.Metrics.Evaluation.ImageSource.Open(PytorchFidFixture.FolderPath("rgb48x32"), new() { Count = 1 });
        using var image = source.Batches(1, null, default).Single();
        using var plain = new InceptionFeatureExtractor(_f.Net, 64, ownsNetwork: false, logits: false);
        using var full = new InceptionFeatureExtractor(_f.Net, 64, ownsNetwork: false);
        var p = plain.Extract(image);
        var f = full.Extract(image);
        Assert.Equal(0, plain.Classes);
        Assert.Null(p.Logits);
        Assert.Equal(1008, full.Classes);
        Assert.Equal(new long[] { 1, 1008 }, f.Logits!.shape);
        Assert.True(p.Features.equal(f.Features).all().item<bool>());
    }

    /// <summary>
    /// <c>ddpm fid FOLDER FOLDER --inception-weights W</c> end to end, at 64 dims (the first layers only, as no IS is
    /// asked for). Printed to 4 decimals, so within 5e-5 of fid.json; the JSON report within 1e-6 relative (see above).
    /// </summary>
    [Fact]
    public void FidCommandPrintsPytorchFidsValue()
    {
        double expected = ExpectedFid(64);
        var json = Path.Combine(TestUtil.TempDir(), "fid.json");
        var (code, output, err) = TestUtil.Cli("fid", PytorchFidFixture.FolderPath("rgb32-a"), PytorchFidFixture.FolderPath("rgb32-b"),
            "--dims", "64", "--inception-weights", _f.WeightsFile, "-o", json, "--no-progress");
        Assert.True(code == 0, err + output);
        var m = Regex.Match(output, @"FID \(inception-v3-fid/maxpool1, 64 dims\): (\S+)");
        Assert.True(m.Success, output);
        double printed = double.Parse(m.Groups[1].Value, CultureInfo.CurrentCulture);
        Assert.True(Math.Abs(printed - expected) <= 5e-5 + 1e-6 * expected, $"printed {printed} vs {expected:R}");
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var r = doc.RootElement;
        Assert.True(Math.Abs(r.GetProperty("distance").GetDouble() - expected) <= 1e-6 * expected, r.GetProperty("distance").ToString());
        Assert.Equal(12, r.GetProperty("a").GetProperty("count").GetInt64());
        Assert.Equal(12, r.GetProperty("b").GetProperty("count").GetInt64());
    }

    /// <summary>
    /// <c>ddpm stats</c> of the 28x28 grey folder (one the crop-and-resample defect broke) against the mean and the
    /// N - 1 covariance of pytorch-fid's activations, computed here by the definitions (numpy's mean and cov). An error of
    /// e in the features moves a covariance entry by at most about 2 e max|x - mu|, so the bounds follow the feature
    /// tolerance: mu within 1e-6 of the largest feature, sigma within 2e-6 of the largest feature times the largest deviation.
    /// </summary>
    [Fact]
    public void StatsCommandOnTheGreyFolderGivesPytorchFidsStatistics()
    {
        var npz = Path.Combine(TestUtil.TempDir(), "grey28.npz");
        var (code, output, err) = TestUtil.Cli("stats", PytorchFidFixture.FolderPath("grey28"), "-o", npz,
            "--dims", "64", "--inception-weights", _f.WeightsFile, "--no-progress");
        Assert.True(code == 0, err + output);
        var stats = FeatureStatistics.LoadNpz(npz);
        var r = PytorchFidFixture.Reference("grey28", 64);
        int n = (int)r.Shape[0], d = (int)r.Shape[1];
        Assert.Equal(d, stats.Dim);
        var mu = new double[d];
        for (int j = 0; j < d; j++)
            for (int i = 0; i < n; i++) mu[j] += r.Data[i * d + j] / n;
        double largest = r.Data.Max(Math.Abs), deviation = 0, muErr = 0, sigmaErr = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < d; j++) deviation = Math.Max(deviation, Math.Abs(r.Data[i * d + j] - mu[j]));
        for (int j = 0; j < d; j++)
        {
            muErr = Math.Max(muErr, Math.Abs(stats.Mu[j] - mu[j]));
            for (int k = 0; k < d; k++)
            {
                double c = 0;
                for (int i = 0; i < n; i++) c += (r.Data[i * d + j] - mu[j]) * (r.Data[i * d + k] - mu[k]);
                sigmaErr = Math.Max(sigmaErr, Math.Abs(stats.Sigma[j, k] - c / (n - 1)));
            }
        }
        _log.WriteLine(string.Format(CultureInfo.InvariantCulture, "grey28 d64 via ddpm stats: mu max diff {0:E2}, sigma max diff {1:E2} (largest feature {2:F3}, largest deviation {3:F3})",
            muErr, sigmaErr, largest, deviation));
        Assert.True(muErr <= FeatureTolerance * largest, $"mu: {muErr:E3}");
        Assert.True(sigmaErr <= 2 * FeatureTolerance * largest * deviation, $"sigma: {sigmaErr:E3}");
    }

    /// <summary>
    /// The Frechet distance of two feature sets (n_a, D) and (n_b, D) without a D x D square root: with centred A and B,
    /// sigma_a = A'A / (n_a - 1) and sigma_b = B'B / (n_b - 1), the non-zero eigenvalues of sigma_a sigma_b are those of
    /// (A B')(A B')' / ((n_a - 1)(n_b - 1)), so Tr sqrt(sigma_a sigma_b) is the sum of the singular values of the small
    /// matrix A B' over sqrt((n_a - 1)(n_b - 1)), and Tr sigma = |A|_F^2 / (n - 1). Exact to float64 round-off for small n.
    /// </summary>
    internal static double LowRankFid(Tensor xa, Tensor xb)
    {
        using var scope = NewDisposeScope();
        var a = xa.to(ScalarType.Float64);
        var b = xb.to(ScalarType.Float64);
        double ka = a.shape[0] - 1, kb = b.shape[0] - 1;
        var ma = a.mean(new long[] { 0 });
        var mb = b.mean(new long[] { 0 });
        var ca = a - ma;
        var cb = b - mb;
        var d = ma - mb;
        double meanTerm = d.dot(d).item<double>();
        double traces = ca.square().sum().item<double>() / ka + cb.square().sum().item<double>() / kb;
        double trSqrt = linalg.svdvals(ca.matmul(cb.t())).sum().item<double>() / Math.Sqrt(ka * kb);
        return meanTerm + traces - 2 * trSqrt;
    }

    /// <summary>
    /// <c>ddpm fid --isc</c> prints the Inception Score of each side (torch-fidelity's definition, reference.md section 4:
    /// softmax of the logits without fc's bias, 10 splits, exp of the mean KL(p(y|x) || p(y)) per split, their mean and
    /// population std). The expectation is computed here in float64 plain loops from pytorch-fid's own 2048-d activations
    /// (the fixture) times the rule's fc.weight, never from the project's network; split k holds images
    /// [floor(k n / 10), floor((k + 1) n / 10)), so 12 images make splits of 1, 1, 1, 1, 2, 1, 1, 1, 1, 2.
    /// </summary>
    [Fact]
    public void FidWithIscPrintsTheInceptionScoreOfPytorchFidsLogits()
    {
        var json = Path.Combine(TestUtil.TempDir(), "fid-isc.json");
        var (code, output, err) = TestUtil.Cli("fid", PytorchFidFixture.FolderPath("rgb32-a"), PytorchFidFixture.FolderPath("rgb32-b"),
            "--isc", "--inception-weights", _f.WeightsFile, "-o", json, "--no-progress");
        Assert.True(code == 0, err + output);
        double[,] fc;
        using (var scope = NewDisposeScope())
        {
            var w = TorchSharp.PyBridge.Safetensors.LoadStateDict(_f.WeightsFile)["fc.weight"].to(ScalarType.Float64);
            fc = new double[w.shape[0], w.shape[1]];
            var flat = w.data<double>().ToArray();
            for (int i = 0; i < fc.GetLength(0); i++)
                for (int j = 0; j < fc.GetLength(1); j++) fc[i, j] = flat[i * fc.GetLength(1) + j];
        }
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        foreach (var (side, folder) in new[] { ("a", "rgb32-a"), ("b", "rgb32-b") })
        {
            var (mean, std) = InceptionScoreByHand(PytorchFidFixture.Reference(folder, 2048), fc, splits: 10);
            var score = doc.RootElement.GetProperty(side).GetProperty("score");
            // The logits carry the features' float32 round-off (1e-6 relative, FeatureTolerance) times |fc| sums of about
            // 1: the scores, exponentials of mean log-ratios of order 1, agree to about 1e-5 relative.
            Assert.True(Math.Abs(score.GetProperty("mean").GetDouble() - mean) <= 1e-5 * mean, $"{side}: {score} vs mean {mean:R}");
            Assert.True(Math.Abs(score.GetProperty("std").GetDouble() - std) <= 1e-5 * mean, $"{side}: {score} vs std {std:R}");
            Assert.Contains($"score of {side.ToUpperInvariant()}", output, StringComparison.OrdinalIgnoreCase);
        }
    }

    /// <summary>The Inception Score by its definition, in float64 loops: logits = features x fc.weight^T (no bias).</summary>
    private static (double Mean, double Std) InceptionScoreByHand(NpyArray features, double[,] fc, int splits)
    {
        int n = (int)features.Shape[0], d = (int)features.Shape[1], k = fc.GetLength(0);
        var p = new double[n, k];
        for (int i = 0; i < n; i++)
        {
            var logits = new double[k];
            double max = double.NegativeInfinity, sum = 0;
            for (int c = 0; c < k; c++)
            {
                double z = 0;
                for (int j = 0; j < d; j++) z += features.Data[i * d + j] * fc[c, j];
                logits[c] = z;
                max = Math.Max(max, z);
            }
            for (int c = 0; c < k; c++) sum += p[i, c] = Math.Exp(logits[c] - max);
            for (int c = 0; c < k; c++) p[i, c] /= sum;
        }
        var scores = new double[splits];
        for (int s = 0; s < splits; s++)
        {
            int start = s * n / splits, end = (s + 1) * n / splits, m = end - start;
            var py = new double[k];
            for (int i = start; i < end; i++)
                for (int c = 0; c < k; c++) py[c] += p[i, c] / m;
            double kl = 0;
            for (int i = start; i < end; i++)
                for (int c = 0; c < k; c++)
                    if (p[i, c] > 0) kl += p[i, c] * Math.Log(p[i, c] / py[c]) / m;
            scores[s] = Math.Exp(kl);
        }
        double mean = scores.Average();
        return (mean, Math.Sqrt(scores.Select(v => (v - mean) * (v - mean)).Average()));
    }

    /// <summary>pytorch-fid's activations of a folder as a float64 (N, dims) tensor.</summary>
    internal static Tensor ReferenceTensor(string folder, int dims)
    {
        var r = PytorchFidFixture.Reference(folder, dims);
        return tensor(r.Data, r.Shape, ScalarType.Float64);
    }

    /// <summary>pytorch-fid's FID between rgb32-a and rgb32-b, from the fixture's fid.json.</summary>
    internal static double ExpectedFid(int dims)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(PytorchFidRuleWeights.FixtureDir, "fid.json")));
        return doc.RootElement.GetProperty($"fid_rgb32-a_rgb32-b_d{dims}").GetDouble();
    }
}

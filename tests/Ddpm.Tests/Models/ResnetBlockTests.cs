using Ddpm.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Models;

/// <summary>
/// The residual block against the paper's order (reference.md section 2; <c>diffusion_tf/models/unet.py</c>
/// <c>resnet_block</c>): h = conv1(swish(GroupNorm(x))); h += dense(swish(temb)) per channel; h = conv2(dropout(swish(
/// GroupNorm(h)))); out = shortcut(x) + h, the shortcut a 1x1 conv when the channel count changes.
/// </summary>
public class ResnetBlockTests
{
    private const double GroupNormEps = 1e-6; // the original's GroupNorm epsilon (pesser's port: eps=1e-6)

    private static Dictionary<string, Tensor> Params(nn.Module m) => m.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);

    /// <summary>Every parameter random (seeded), so each weight matters in the output.</summary>
    private static ResnetBlock RandomBlock(int cin, int cout, int tch, double dropout, int groups, long seed)
    {
        manual_seed(seed);
        var block = new ResnetBlock(cin, cout, tch, dropout, groups);
        using var _ = no_grad();
        foreach (var (_, p) in block.named_parameters()) p.normal_(0, 0.5);
        return block;
    }

    [Fact]
    public void RandomBlockMatchesTheOriginalOrderComputedByHandInFloat64()
    {
        using var scope = NewDisposeScope();
        const int n = 2, cin = 2, cout = 4, tch = 5, groups = 2, size = 3;
        using var block = RandomBlock(cin, cout, tch, 0.0, groups, seed: 31);
        block.eval();
        using var g = new Generator(32, CPU);
        var x = randn(new long[] { n, cin, size, size }, generator: g);
        var temb = randn(new long[] { n, tch }, generator: g) * 2;
        Tensor y;
        using (no_grad()) y = block.call(x, temb);

        var p = Params(block);
        var h = Conv(Silu(GroupNorm(D(x), groups, V(p["norm1.weight"]), V(p["norm1.bias"]))), p["conv1.weight"], V(p["conv1.bias"]), 1);
        var e = Dense(Silu(D2(temb)), p["temb_proj.weight"], V(p["temb_proj.bias"]));
        h = AddPerChannel(h, e);
        h = Conv(Silu(GroupNorm(h, groups, V(p["norm2.weight"]), V(p["norm2.bias"]))), p["conv2.weight"], V(p["conv2.bias"]), 1);
        var skip = Conv(D(x), p["nin_shortcut.weight"], V(p["nin_shortcut.bias"]), 0);
        var expected = Add(skip, h);

        // float32 against float64 through two convs of 18-36 terms and two norms: a few float32 ulps of values of order
        // 1-10, so 1e-5 relative + 1e-5 absolute leaves room for rounding and none for a misplaced operation.
        AssertClose(expected, y, 1e-5);

        // The same formula with the temb swish left out, or the temb added after norm2, lies far outside that tolerance:
        // the check above can tell them apart.
        var noSwish = AddPerChannel(Conv(Silu(GroupNorm(D(x), groups, V(p["norm1.weight"]), V(p["norm1.bias"]))), p["conv1.weight"], V(p["conv1.bias"]), 1),
            Dense(D2(temb), p["temb_proj.weight"], V(p["temb_proj.bias"])));
        noSwish = Add(skip, Conv(Silu(GroupNorm(noSwish, groups, V(p["norm2.weight"]), V(p["norm2.bias"]))), p["conv2.weight"], V(p["conv2.bias"]), 1));
        Assert.True(MaxDiff(noSwish, y) > 1e-2);
    }

    /// <summary>
    /// Hand-set weights that leave only the time-embedding path: conv1 all zero, so after it h is exactly
    /// temb_proj(swish(temb)), one constant per (sample, channel); norm2 has one group over both channels, conv2 is the
    /// identity (centre tap 1), the shortcut the identity (2 to 2 channels).
    /// </summary>
    [Fact]
    public void TimeEmbeddingIsSwishedProjectedAndAddedPerChannelBetweenConv1AndNorm2()
    {
        using var scope = NewDisposeScope();
        using var block = new ResnetBlock(2, 2, 3, 0.0, 1);
        block.eval();
        var p = Params(block);
        using (no_grad())
        {
            p["conv1.weight"].zero_();
            p["conv1.bias"].zero_();
            // temb_proj picks temb component 0 for channel 0 and component 2 for channel 1.
            p["temb_proj.weight"].copy_(tensor(new float[] { 1, 0, 0, 0, 0, 1 }).reshape(2, 3));
            p["temb_proj.bias"].zero_();
            p["conv2.weight"].zero_();
            p["conv2.weight"][0, 0, 1, 1] = tensor(1f);
            p["conv2.weight"][1, 1, 1, 1] = tensor(1f);
            p["conv2.bias"].zero_();
        }
        var x = arange(2 * 2 * 2 * 2, dtype: ScalarType.Float32).reshape(2, 2, 2, 2) / 10;
        // Sample 0: temb (-3, 9, -0.5); sample 1: the same with components 0 and 2 swapped.
        var temb = tensor(new float[] { -3f, 9f, -0.5f, -0.5f, 9f, -3f }).reshape(2, 3);
        Tensor y;
        using (no_grad()) y = block.call(x, temb);

        // swish(-3) = -3 sigmoid(-3) = -3 / (1 + e^3) = -3 / 21.0855369 = -0.14227762;
        // swish(-0.5) = -0.5 / (1 + e^0.5) = -0.5 / 2.6487213 = -0.18877033.
        // Sample 0: h = (-0.14227762, -0.18877033) on channels (0, 1), each constant over the 2x2 map. norm2 (one group of
        // both channels): mean -0.16552398, deviations +-d with d = 0.02324636, variance d^2 = 5.4039313e-4, so
        // normalised +-d / sqrt(d^2 + 1e-6) = +-0.99907603 on channel 0 / 1.
        // swish(0.99907603) = 0.99907603 / (1 + e^-0.99907603) = 0.73020157; swish(-0.99907603) = -0.26887446.
        // Sample 1 swaps the two constants, so the signs swap. Output = x + those.
        double d = (Swish(-3) - Swish(-0.5)) / 2, z = d / Math.Sqrt(d * d + GroupNormEps);
        Assert.Equal(0.99907603, z, 8);
        double up = Swish(z), down = Swish(-z);
        Assert.Equal(0.73020157, up, 8);
        Assert.Equal(-0.26887446, down, 8);
        var added = new double[] { up, down, down, up };   // (sample, channel)
        var xs = x.data<float>().ToArray();
        var ys = y.data<float>().ToArray();
        for (int i = 0; i < 16; i++)
            Assert.Equal(xs[i] + added[i / 4], ys[i], 5);  // 1e-5: float32 values of order 1

        // Without the swish on temb the constants would be (-3, -0.5): channel 0 below channel 1 and the signs reversed;
        // added after norm2 instead, the output would add (swish(-0.14228), swish(-0.18877)) = (-0.0661, -0.0855): neither is what came out.
        Assert.True(ys[0] - xs[0] > 0.7);
    }

    /// <summary>
    /// Dropout sits between norm2's swish and conv2: with p = 1 in training mode conv2 sees only zeros, so the output is
    /// shortcut(x) + conv2's bias whatever the other weights; in eval mode the same block is the block without dropout.
    /// </summary>
    [Fact]
    public void DropoutZeroesOnlyTheInputOfConv2InTrainingAndNothingInEval()
    {
        using var scope = NewDisposeScope();
        using var full = RandomBlock(2, 4, 5, 1.0, 2, seed: 41);
        using var none = RandomBlock(2, 4, 5, 0.0, 2, seed: 41);   // same seed: the same weights
        using var g = new Generator(42, CPU);
        var x = randn(new long[] { 2, 2, 3, 3 }, generator: g);
        var temb = randn(new long[] { 2, 5 }, generator: g);
        var p = Params(full);

        full.train();
        Tensor dropped;
        using (no_grad()) dropped = full.call(x, temb);
        // Expected by hand: the 1x1 shortcut conv of x plus conv2's bias per channel (float64 loops).
        var expected = Conv(D(x), p["nin_shortcut.weight"], V(p["nin_shortcut.bias"]), 0);
        expected = AddPerChannel(expected, Tile(V(p["conv2.bias"]), 2));
        AssertClose(expected, dropped, 1e-6); // one 1x1 conv of 2 terms: float32 rounding only
        // Had dropout acted on the block's output, conv2's bias would be missing; on x or before norm2, the shortcut or
        // norm2's bias would show: the bias is of order 0.5, far above the tolerance.
        Assert.True(V(p["conv2.bias"]).Max(Math.Abs) > 0.1);

        full.eval();
        none.eval();
        using (no_grad()) Assert.True(full.call(x, temb).allclose(none.call(x, temb), rtol: 0, atol: 0));
        Assert.True(MaxDiff(D(none.call(x, temb).detach()), dropped) > 0.1); // eval is not the dropped output
    }

    // ---- float64 reference pieces, on arrays [n][c][h][w] ----

    private static double[] V(Tensor t) => t.detach().to(ScalarType.Float64).contiguous().data<double>().ToArray();

    private static double[,,,] D(Tensor t)
    {
        var s = t.shape;
        var v = V(t);
        var r = new double[s[0], s[1], s[2], s[3]];
        int i = 0;
        for (int a = 0; a < s[0]; a++) for (int b = 0; b < s[1]; b++) for (int c = 0; c < s[2]; c++) for (int d = 0; d < s[3]; d++) r[a, b, c, d] = v[i++];
        return r;
    }

    private static double[,] D2(Tensor t)
    {
        var v = V(t);
        long rows = t.shape[0], cols = t.shape[1];
        var r = new double[rows, cols];
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) r[i, j] = v[i * cols + j];
        return r;
    }

    private static double[,] Tile(double[] perChannel, int n)
    {
        var r = new double[n, perChannel.Length];
        for (int i = 0; i < n; i++) for (int c = 0; c < perChannel.Length; c++) r[i, c] = perChannel[c];
        return r;
    }

    private static double Swish(double v) => v / (1 + Math.Exp(-v));

    private static double[,,,] Silu(double[,,,] x)
    {
        var r = (double[,,,])x.Clone();
        for (int a = 0; a < x.GetLength(0); a++) for (int b = 0; b < x.GetLength(1); b++)
            for (int c = 0; c < x.GetLength(2); c++) for (int d = 0; d < x.GetLength(3); d++) r[a, b, c, d] = Swish(x[a, b, c, d]);
        return r;
    }

    private static double[,] Silu(double[,] x)
    {
        var r = (double[,])x.Clone();
        for (int a = 0; a < x.GetLength(0); a++) for (int b = 0; b < x.GetLength(1); b++) r[a, b] = Swish(x[a, b]);
        return r;
    }

    /// <summary>GroupNorm: per sample and group, (x - mean) / sqrt(biased variance + eps), then per-channel affine.</summary>
    private static double[,,,] GroupNorm(double[,,,] x, int groups, double[] gamma, double[] beta)
    {
        int n = x.GetLength(0), c = x.GetLength(1), h = x.GetLength(2), w = x.GetLength(3), per = c / groups;
        var r = new double[n, c, h, w];
        for (int s = 0; s < n; s++)
            for (int gi = 0; gi < groups; gi++)
            {
                double sum = 0, sq = 0; int count = per * h * w;
                for (int ch = gi * per; ch < (gi + 1) * per; ch++) for (int i = 0; i < h; i++) for (int j = 0; j < w; j++) sum += x[s, ch, i, j];
                double mean = sum / count;
                for (int ch = gi * per; ch < (gi + 1) * per; ch++) for (int i = 0; i < h; i++) for (int j = 0; j < w; j++) sq += Math.Pow(x[s, ch, i, j] - mean, 2);
                double sd = Math.Sqrt(sq / count + GroupNormEps);
                for (int ch = gi * per; ch < (gi + 1) * per; ch++) for (int i = 0; i < h; i++) for (int j = 0; j < w; j++)
                            r[s, ch, i, j] = (x[s, ch, i, j] - mean) / sd * gamma[ch] + beta[ch];
            }
        return r;
    }

    /// <summary>Cross-correlation with stride 1 and zero padding (PyTorch's Conv2d), weight [out, in, k, k].</summary>
    private static double[,,,] Conv(double[,,,] x, Tensor weight, double[] bias, int pad)
    {
        var wv = V(weight);
        int n = x.GetLength(0), cin = x.GetLength(1), h = x.GetLength(2), w = x.GetLength(3);
        int cout = (int)weight.shape[0], k = (int)weight.shape[2];
        int ho = h + 2 * pad - k + 1, wo = w + 2 * pad - k + 1;
        var r = new double[n, cout, ho, wo];
        for (int s = 0; s < n; s++) for (int o = 0; o < cout; o++) for (int i = 0; i < ho; i++) for (int j = 0; j < wo; j++)
                    {
                        double acc = bias[o];
                        for (int ci = 0; ci < cin; ci++) for (int a = 0; a < k; a++) for (int b = 0; b < k; b++)
                                {
                                    int yi = i + a - pad, xj = j + b - pad;
                                    if (yi < 0 || yi >= h || xj < 0 || xj >= w) continue;
                                    acc += wv[((o * cin + ci) * k + a) * k + b] * x[s, ci, yi, xj];
                                }
                        r[s, o, i, j] = acc;
                    }
        return r;
    }

    /// <summary>y = W x + b for each row of x, W [out, in].</summary>
    private static double[,] Dense(double[,] x, Tensor weight, double[] bias)
    {
        var w = D2(weight);
        int n = x.GetLength(0), din = x.GetLength(1), dout = w.GetLength(0);
        var r = new double[n, dout];
        for (int s = 0; s < n; s++) for (int o = 0; o < dout; o++)
            {
                double acc = bias[o];
                for (int i = 0; i < din; i++) acc += w[o, i] * x[s, i];
                r[s, o] = acc;
            }
        return r;
    }

    private static double[,,,] AddPerChannel(double[,,,] x, double[,] perSampleChannel)
    {
        var r = (double[,,,])x.Clone();
        for (int a = 0; a < x.GetLength(0); a++) for (int b = 0; b < x.GetLength(1); b++)
            for (int c = 0; c < x.GetLength(2); c++) for (int d = 0; d < x.GetLength(3); d++) r[a, b, c, d] += perSampleChannel[a, b];
        return r;
    }

    private static double[,,,] Add(double[,,,] x, double[,,,] y)
    {
        var r = (double[,,,])x.Clone();
        for (int a = 0; a < x.GetLength(0); a++) for (int b = 0; b < x.GetLength(1); b++)
            for (int c = 0; c < x.GetLength(2); c++) for (int d = 0; d < x.GetLength(3); d++) r[a, b, c, d] += y[a, b, c, d];
        return r;
    }

    private static double MaxDiff(double[,,,] expected, Tensor actual)
    {
        var a = D(actual);
        double m = 0;
        foreach (var (e, v) in expected.Cast<double>().Zip(a.Cast<double>())) m = Math.Max(m, Math.Abs(e - v));
        return m;
    }

    private static double MaxDiff(double[,,,] expected, double[,,,] actual)
    {
        double m = 0;
        foreach (var (e, v) in expected.Cast<double>().Zip(actual.Cast<double>())) m = Math.Max(m, Math.Abs(e - v));
        return m;
    }

    /// <summary>|actual - expected| &lt;= tol (1 + |expected|) everywhere; shapes equal.</summary>
    private static void AssertClose(double[,,,] expected, Tensor actual, double tol)
    {
        Assert.Equal(new long[] { expected.GetLength(0), expected.GetLength(1), expected.GetLength(2), expected.GetLength(3) }, actual.shape);
        var a = D(actual);
        foreach (var (e, v) in expected.Cast<double>().Zip(a.Cast<double>()))
            Assert.True(Math.Abs(e - v) <= tol * (1 + Math.Abs(e)), $"expected {e}, got {v}");
    }
}

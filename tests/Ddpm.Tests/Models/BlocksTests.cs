using Ddpm.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Models;

public class BlocksTests
{
    [Fact]
    public void SinusoidalEmbeddingMatchesHandValues()
    {
        // dim 4: half 2, freqs exp(-i ln(10000)/1) = 1, 1e-4; output [sin(t), sin(t/1e4), cos(t), cos(t/1e4)].
        using var e = TimestepEmbedding.Sinusoidal(tensor(new long[] { 0, 1, 10 }), 4);
        Assert.Equal(new long[] { 3, 4 }, e.shape);
        var v = e.data<float>().ToArray();
        float[] expected =
        [
            0f, 0f, 1f, 1f,
            0.84147098f, 1.0e-4f, 0.54030231f, 0.99999999f,
            -0.54402111f, 1.0e-3f, -0.83907153f, 0.9999995f,
        ];
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], v[i], 6);

        // dim 6: half 3, freqs 1, 1e-2, 1e-4; t = 100.
        using var e6 = TimestepEmbedding.Sinusoidal(tensor(new long[] { 100 }), 6);
        float[] ex6 = [-0.50636564f, 0.84147098f, 0.00999983f, 0.86231887f, 0.54030231f, 0.99995000f];
        var v6 = e6.data<float>().ToArray();
        for (int i = 0; i < 6; i++) Assert.Equal(ex6[i], v6[i], 6);

        // Odd width: one zero column appended.
        using var e5 = TimestepEmbedding.Sinusoidal(tensor(new long[] { 7 }), 5);
        Assert.Equal(new long[] { 1, 5 }, e5.shape);
        Assert.Equal(0f, e5[0, 4].item<float>());
    }

    [Fact]
    public void DownsamplePadsOnlyRightAndBottom()
    {
        using var scope = NewDisposeScope();
        manual_seed(6);
        using var ds = new Downsample(1, withConv: true);
        var (w, b) = (ds.named_parameters().Single(p => p.name == "conv.weight").parameter, ds.named_parameters().Single(p => p.name == "conv.bias").parameter);
        using (no_grad()) b.fill_(0.5);
        var x = arange(16, dtype: ScalarType.Float32).reshape(1, 1, 4, 4);
        var y = ds.call(x);
        Assert.Equal(new long[] { 1, 1, 2, 2 }, y.shape);
        var xs = x.data<float>().ToArray();
        var ws = w.data<float>().ToArray();
        // Output (i, j) sees input rows 2i..2i+2 and columns 2j..2j+2; row/column 4 is the zero padding.
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
            {
                double s = 0.5;
                for (int a = 0; a < 3; a++)
                    for (int c = 0; c < 3; c++)
                    {
                        int r = 2 * i + a, col = 2 * j + c;
                        if (r < 4 && col < 4) s += ws[a * 3 + c] * xs[r * 4 + col];
                    }
                Assert.Equal(s, y[0, 0, i, j].item<float>(), 4);
            }
        using var pool = new Downsample(1, withConv: false);
        Assert.Equal((0 + 1 + 4 + 5) / 4.0, pool.call(x)[0, 0, 0, 0].item<float>(), 6);
        Assert.Empty(pool.parameters());
    }

    [Fact]
    public void UpsampleRepeatsNearestPixels()
    {
        using var scope = NewDisposeScope();
        using var us = new Upsample(1, withConv: false);
        var y = us.call(tensor(new float[] { 1, 2, 3, 4 }).reshape(1, 1, 2, 2));
        Assert.Equal(new float[] { 1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4 }, y.data<float>().ToArray());
    }

    [Fact]
    public void AttentionMatchesAnExplicitLoop()
    {
        using var scope = NewDisposeScope();
        manual_seed(7);
        const int c = 4, hw = 3;
        using var attn = new AttnBlock(c, 2);
        var p = attn.named_parameters().ToDictionary(kv => kv.name, kv => kv.parameter);
        using (no_grad())
        {
            p["proj_out.weight"].normal_(0, 0.5);
            p["proj_out.bias"].normal_(0, 0.5);
            p["q.bias"].normal_(0, 0.5);
        }
        var x = randn(1, c, hw, hw);
        var y = attn.call(x);

        // Reference: GroupNorm by hand, then a per-position softmax over all key positions, in float64.
        int n = hw * hw;
        var xv = x.to(ScalarType.Float64).reshape(c, n).data<double>().ToArray();
        var h = new double[c * n];
        for (int g = 0; g < 2; g++)
        {
            double mean = 0, sq = 0;
            for (int ch = 2 * g; ch < 2 * g + 2; ch++) for (int i = 0; i < n; i++) mean += xv[ch * n + i];
            mean /= 2 * n;
            for (int ch = 2 * g; ch < 2 * g + 2; ch++) for (int i = 0; i < n; i++) sq += Math.Pow(xv[ch * n + i] - mean, 2);
            double sd = Math.Sqrt(sq / (2 * n) + 1e-6);
            for (int ch = 2 * g; ch < 2 * g + 2; ch++) for (int i = 0; i < n; i++) h[ch * n + i] = (xv[ch * n + i] - mean) / sd;
        }
        double[] Proj(string name, double[] input)
        {
            var w = p[name + ".weight"].to(ScalarType.Float64).reshape(c, c).data<double>().ToArray();
            var b = p[name + ".bias"].to(ScalarType.Float64).data<double>().ToArray();
            var o = new double[c * n];
            for (int oc = 0; oc < c; oc++) for (int i = 0; i < n; i++)
                {
                    double s = b[oc];
                    for (int ic = 0; ic < c; ic++) s += w[oc * c + ic] * input[ic * n + i];
                    o[oc * n + i] = s;
                }
            return o;
        }
        var q = Proj("q", h); var k = Proj("k", h); var v = Proj("v", h);
        var att = new double[c * n];
        for (int i = 0; i < n; i++)
        {
            var logits = new double[n];
            for (int j = 0; j < n; j++) { double s = 0; for (int ch = 0; ch < c; ch++) s += q[ch * n + i] * k[ch * n + j]; logits[j] = s / Math.Sqrt(c); }
            double mx = logits.Max(), z = logits.Sum(l => Math.Exp(l - mx));
            for (int ch = 0; ch < c; ch++) att[ch * n + i] = Enumerable.Range(0, n).Sum(j => Math.Exp(logits[j] - mx) / z * v[ch * n + j]);
        }
        var outp = Proj("proj_out", att);
        var yv = y.reshape(c, n).data<float>().ToArray();
        for (int i = 0; i < c * n; i++) Assert.Equal(xv[i] + outp[i], yv[i], 4);
    }

    [Fact]
    public void ResnetBlockAddsTheShortcutAndIsIdentityWhenFresh()
    {
        using var scope = NewDisposeScope();
        manual_seed(8);
        using var same = new ResnetBlock(8, 8, 16, 0.0, 4);
        var x = randn(2, 8, 4, 4);
        var temb = randn(2, 16);
        Assert.True(allclose(same.call(x, temb), x)); // conv2 starts at zero, no shortcut conv
        using var wider = new ResnetBlock(8, 12, 16, 0.0, 4);
        Assert.Equal(new long[] { 2, 12, 4, 4 }, wider.call(x, temb).shape);
        Assert.Contains(wider.named_parameters(), p => p.name == "nin_shortcut.weight");
        Assert.DoesNotContain(same.named_parameters(), p => p.name == "nin_shortcut.weight");
    }
}

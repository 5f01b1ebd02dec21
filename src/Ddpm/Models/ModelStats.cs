using TorchSharp;

namespace Ddpm.Models;

/// <summary>Size and cost of a model: parameter counts and the multiply-accumulates of one forward pass.</summary>
public static class ModelStats
{
    /// <summary>Number of scalar parameters (trainable or not) of <paramref name="module"/>; buffers are not counted.</summary>
    public static long CountParameters(torch.nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        long n = 0;
        foreach (var p in module.parameters()) n += p.numel();
        return n;
    }

    /// <summary>Parameter count of the <see cref="UNet"/> built from <paramref name="config"/>, from the config alone (no tensors allocated).</summary>
    public static long CountParameters(UNetConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        var c = config;
        int ch = c.BaseChannels, tch = c.TimeEmbeddingChannels;
        static long Conv(long cin, long cout, long k) => cout * cin * k * k + cout;
        static long Dense(long cin, long cout) => cin * cout + cout;
        static long Norm(long channels) => 2 * channels;
        long Res(long cin, long cout) =>
            Norm(cin) + Conv(cin, cout, 3) + Dense(tch, cout) + Norm(cout) + Conv(cout, cout, 3) + (cin != cout ? Conv(cin, cout, 1) : 0);
        static long Attn(long channels) => Norm(channels) + 4 * Conv(channels, channels, 1);

        long n = Dense(ch, tch) + Dense(tch, tch) + Conv(c.InChannels, ch, 3);
        var skips = new Stack<int>();
        skips.Push(ch);
        int cur = ch;
        for (int i = 0; i < c.Levels; i++)
        {
            for (int j = 0; j < c.NumResBlocks; j++)
            {
                n += Res(cur, c.ChannelsAt(i));
                cur = c.ChannelsAt(i);
                if (c.HasAttentionAt(i)) n += Attn(cur);
                skips.Push(cur);
            }
            if (i != c.Levels - 1)
            {
                if (c.ResampleWithConv) n += Conv(cur, cur, 3);
                skips.Push(cur);
            }
        }
        n += 2 * Res(cur, cur) + (c.MidAttention ? Attn(cur) : 0);
        for (int i = c.Levels - 1; i >= 0; i--)
        {
            for (int j = 0; j <= c.NumResBlocks; j++)
            {
                n += Res(cur + skips.Pop(), c.ChannelsAt(i));
                cur = c.ChannelsAt(i);
                if (c.HasAttentionAt(i)) n += Attn(cur);
            }
            if (i != 0 && c.ResampleWithConv) n += Conv(cur, cur, 3);
        }
        return n + Norm(cur) + Conv(cur, c.EffectiveOutChannels, 3);
    }

    /// <summary>
    /// Multiply-accumulates of one forward pass of <see cref="UNet"/> for ONE image of <see cref="UNetConfig.ImageSize"/>,
    /// derived from the config: every conv (Cout x Cin x k x k x Hout x Wout; the 1x1 convs of shortcuts and attention
    /// included), every dense layer (in x out), and per attention block the two matmuls q k^T and attn v (HW x HW x C each:
    /// h heads of d = C / h channels cost h x HW x HW x d, the same for any number of heads).
    /// Bias additions, normalisation, activations, softmax, residual additions, padding and resampling are ignored.
    /// </summary>
    public static long CountMacs(UNetConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        var c = config;
        long tch = c.TimeEmbeddingChannels;
        static long Conv(long cin, long cout, long k, long res) => cout * cin * k * k * res * res;
        return SumOverLayers(c, new LayerCosts(
            Stem: () => (long)c.BaseChannels * tch + tch * tch + Conv(c.InChannels, c.BaseChannels, 3, c.ImageSize), // time embedding, conv_in
            ResBlock: (cin, cout, res) =>
                Conv(cin, cout, 3, res) + tch * cout + Conv(cout, cout, 3, res) + (cin != cout ? Conv(cin, cout, 1, res) : 0),
            Attention: (ch, res) => 4 * Conv(ch, ch, 1, res) + 2 * (res * res) * (res * res) * ch,
            Downsample: (ch, res) => c.ResampleWithConv ? Conv(ch, ch, 3, res / 2) : 0,
            Upsample: (ch, res) => c.ResampleWithConv ? Conv(ch, ch, 3, res * 2) : 0,
            Head: ch => Conv(ch, c.EffectiveOutChannels, 3, c.ImageSize))); // conv_out
    }

    /// <summary>
    /// Values a training step keeps per image for the backward pass of <see cref="UNet"/> (a rough upper bound, from the
    /// config alone), counted per pixel of each layer's resolution: a residual block keeps 3 tensors of its input
    /// channels (the two inputs of GroupNorm and swish, the conv's input) and 6 of its output channels (the same three
    /// after the time embedding, dropout's mask and output, the sum); an attention block 8 tensors of its channels
    /// (norm, q, k, v, weighted values, projection, in and out) and 2 attention maps of HW x HW per head (logits and softmax);
    /// a resampling conv its input; conv_in its output and conv_out 3 tensors (norm, swish, conv input).
    /// Multiply by 4 bytes (float32) and the batch size for a step's activations.
    /// </summary>
    public static long CountTrainingActivations(UNetConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        var c = config;
        long size2 = (long)c.ImageSize * c.ImageSize;
        return SumOverLayers(c, new LayerCosts(
            Stem: () => c.BaseChannels * size2, // conv_in's output
            ResBlock: (cin, cout, res) => (3 * cin + 6 * cout) * res * res,
            Attention: (ch, res) => 8 * ch * res * res + 2L * c.AttentionHeads((int)ch) * (res * res) * (res * res),
            Downsample: (ch, res) => ch * res * res,
            Upsample: (ch, res) => 2 * ch * (2 * res) * (2 * res), // the upsampled map and the conv's input
            Head: ch => 3 * ch * size2));
    }

    /// <summary>What one layer of the U-Net costs, by kind; <see cref="SumOverLayers"/> adds them up in the network's order.</summary>
    private sealed record LayerCosts(
        Func<long> Stem, Func<long, long, long, long> ResBlock, Func<long, long, long> Attention,
        Func<long, long, long> Downsample, Func<long, long, long> Upsample, Func<long, long> Head);

    /// <summary>
    /// Walks <see cref="UNet"/>'s layers as its forward pass does (down levels with their skips, the middle, up levels
    /// taking the skips back, the head) and sums <paramref name="costs"/> over them.
    /// </summary>
    private static long SumOverLayers(UNetConfig c, LayerCosts costs)
    {
        long total = costs.Stem();
        var skips = new Stack<int>();
        skips.Push(c.BaseChannels);
        int cur = c.BaseChannels;
        for (int i = 0; i < c.Levels; i++)
        {
            int res = c.ResolutionAt(i), cout = c.ChannelsAt(i);
            for (int j = 0; j < c.NumResBlocks; j++)
            {
                total += costs.ResBlock(cur, cout, res);
                cur = cout;
                if (c.HasAttentionAt(i)) total += costs.Attention(cur, res);
                skips.Push(cur);
            }
            if (i != c.Levels - 1)
            {
                total += costs.Downsample(cur, res);
                skips.Push(cur);
            }
        }

        int low = c.ResolutionAt(c.Levels - 1);
        total += 2 * costs.ResBlock(cur, cur, low) + (c.MidAttention ? costs.Attention(cur, low) : 0); // middle

        for (int i = c.Levels - 1; i >= 0; i--)
        {
            int res = c.ResolutionAt(i), cout = c.ChannelsAt(i);
            for (int j = 0; j <= c.NumResBlocks; j++)
            {
                total += costs.ResBlock(cur + skips.Pop(), cout, res);
                cur = cout;
                if (c.HasAttentionAt(i)) total += costs.Attention(cur, res);
            }
            if (i != 0) total += costs.Upsample(cur, res);
        }
        return total + costs.Head(cur);
    }

    /// <summary>Floating-point operations of one forward pass for one image, in units of 1e9: 2 x MACs / 1e9.</summary>
    public static double Gflops(UNetConfig config) => 2.0 * CountMacs(config) / 1e9;
}

using Ddpm.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Models;

/// <summary>
/// The U-Net of Ho et al. 2020 (<c>diffusion_tf/models/unet.py</c>), predicting a tensor the shape of its input
/// (eps, or 2x channels for a learned variance) from a noisy image and integer timesteps.
/// Field names are the state-dict keys of the PyTorch port of the original checkpoints (pesser/pytorch_diffusion):
/// <c>temb.dense.{0,1}</c>, <c>conv_in</c>, <c>down.{level}.block.{j}</c>, <c>down.{level}.attn.{j}</c>,
/// <c>down.{level}.downsample.conv</c>, <c>mid.{block_1,attn_1,block_2}</c>, <c>up.{level}.block.{j}</c>,
/// <c>up.{level}.attn.{j}</c>, <c>up.{level}.upsample.conv</c>, <c>norm_out</c>, <c>conv_out</c>
/// (level 0 is the full resolution, both ways).
/// <para>The same structure holds diffusers' <c>UNet2DModel</c> layouts: <see cref="UNetConfig"/>'s NormEps, FlipSinToCos,
/// FreqShift, DownsamplePadding, AttentionHeadChannels and MidAttention change the arithmetic of some layers (or drop
/// <c>mid.attn_1</c>) without renaming any key; their defaults are the original network.</para>
/// </summary>
public sealed class UNet : nn.Module<Tensor, Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are state-dict keys
    private readonly TimestepEmbedding temb;
    private readonly Conv2d conv_in;
    private readonly ModuleList<DownLevel> down;
    private readonly MidBlock mid;
    private readonly ModuleList<UpLevel> up;
    private readonly GroupNorm norm_out;
    private readonly Conv2d conv_out;
#pragma warning restore IDE1006

    /// <summary>The settings the model was built from (a private copy; do not change it).</summary>
    public UNetConfig Config { get; }

    public UNet(UNetConfig config) : base(nameof(UNet))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config.Clone();
        var c = Config;
        int ch = c.BaseChannels, tch = c.TimeEmbeddingChannels, groups = c.NormGroups, levels = c.Levels;
        double eps = c.NormEps;
        ResnetBlock Res(int cin, int cout) => new(cin, cout, tch, c.Dropout, groups, eps);
        AttnBlock Attn(int channels) => new(channels, groups, c.AttentionHeadChannels, eps);

        temb = new TimestepEmbedding(ch, c.FlipSinToCos, c.FreqShift);
        conv_in = Init.Conv(c.InChannels, ch, 3, padding: 1);

        // Way down: remember the channel count of every tensor pushed on the skip stack.
        var skipChannels = new List<int> { ch };
        var downLevels = new DownLevel[levels];
        int blockIn = ch;
        for (int i = 0; i < levels; i++)
        {
            int blockOut = c.ChannelsAt(i);
            var blocks = new List<ResnetBlock>();
            var attns = new List<AttnBlock>();
            for (int j = 0; j < c.NumResBlocks; j++)
            {
                blocks.Add(Res(blockIn, blockOut));
                blockIn = blockOut;
                if (c.HasAttentionAt(i)) attns.Add(Attn(blockIn));
                skipChannels.Add(blockIn);
            }
            Downsample? ds = null;
            if (i != levels - 1)
            {
                ds = new Downsample(blockIn, c.ResampleWithConv, c.DownsamplePadding);
                skipChannels.Add(blockIn);
            }
            downLevels[i] = new DownLevel(blocks, attns, ds);
        }
        down = new ModuleList<DownLevel>(downLevels);

        mid = new MidBlock(Res(blockIn, blockIn), c.MidAttention ? Attn(blockIn) : null, Res(blockIn, blockIn));

        // Way up: NumResBlocks + 1 blocks per level, each eating one skip tensor.
        var upLevels = new UpLevel[levels];
        for (int i = levels - 1; i >= 0; i--)
        {
            int blockOut = c.ChannelsAt(i);
            var blocks = new List<ResnetBlock>();
            var attns = new List<AttnBlock>();
            for (int j = 0; j <= c.NumResBlocks; j++)
            {
                int skip = skipChannels[^1];
                skipChannels.RemoveAt(skipChannels.Count - 1);
                blocks.Add(Res(blockIn + skip, blockOut));
                blockIn = blockOut;
                if (c.HasAttentionAt(i)) attns.Add(Attn(blockIn));
            }
            var us = i != 0 ? new Upsample(blockIn, c.ResampleWithConv) : null;
            upLevels[i] = new UpLevel(blocks, attns, us);
        }
        if (skipChannels.Count != 0) throw new InvalidOperationException("U-Net skip connections do not balance");
        up = new ModuleList<UpLevel>(upLevels);

        norm_out = Init.Norm(groups, blockIn, eps);
        conv_out = Init.Conv(blockIn, c.EffectiveOutChannels, 3, padding: 1, zero: true);
        RegisterComponents();
    }

    /// <param name="x">Images (N, InChannels, H, W) of the weights' type (float32, or float64 for a model cast to it); H and W divisible by 2^(levels-1) (normally ImageSize).</param>
    /// <param name="t">Integer timesteps (N).</param>
    /// <returns>(N, EffectiveOutChannels, H, W).</returns>
    public override Tensor forward(Tensor x, Tensor t)
    {
        CheckInputs(x, t);
        using var scope = NewDisposeScope();
        var c = Config;
        var emb = temb.call(t);

        var hs = new List<Tensor> { SafeConv.Forward(conv_in, x) };
        for (int i = 0; i < c.Levels; i++)
        {
            var level = down[i];
            for (int j = 0; j < c.NumResBlocks; j++)
            {
                var h = level.block[j].call(hs[^1], emb);
                if (level.attn.Count > 0) h = level.attn[j].call(h);
                hs.Add(h);
            }
            if (level.downsample is not null) hs.Add(level.downsample.call(hs[^1]));
        }

        var z = hs[^1];
        z = mid.block_1.call(z, emb);
        if (mid.attn_1 is not null) z = mid.attn_1.call(z);
        z = mid.block_2.call(z, emb);

        for (int i = c.Levels - 1; i >= 0; i--)
        {
            var level = up[i];
            for (int j = 0; j <= c.NumResBlocks; j++)
            {
                var skip = hs[^1];
                hs.RemoveAt(hs.Count - 1);
                z = level.block[j].call(cat([z, skip], 1), emb);
                if (level.attn.Count > 0) z = level.attn[j].call(z);
            }
            if (level.upsample is not null) z = level.upsample.call(z);
        }

        z = SafeConv.Forward(conv_out, nn.functional.silu(norm_out.call(z)));
        return z.MoveToOuterDisposeScope();
    }

    private void CheckInputs(Tensor x, Tensor t)
    {
        var c = Config;
        if (x.dim() != 4 || x.shape[1] != c.InChannels)
            throw new DdpmException($"U-Net input: expected images (N, {c.InChannels}, H, W), got [{string.Join(", ", x.shape)}]");
        long m = 1L << (c.Levels - 1);
        if (x.shape[2] % m != 0 || x.shape[3] % m != 0)
            throw new DdpmException($"U-Net input: image size {x.shape[2]}x{x.shape[3]} is not divisible by {m} (the model has {c.Levels} levels; built for {c.ImageSize}x{c.ImageSize})");
        var dtype = conv_in.weight!.dtype;
        if (x.dtype != dtype)
            throw new DdpmException($"U-Net input: expected {dtype} images (the type of the model's weights), got {x.dtype}");
        if (t.dim() != 1 || t.shape[0] != x.shape[0])
            throw new DdpmException($"U-Net input: expected one timestep per image ({x.shape[0]}), got shape [{string.Join(", ", t.shape)}]");
        if (t.is_floating_point() || t.is_complex())
            throw new DdpmException($"U-Net input: timesteps must be integers, got {t.dtype}");
    }

    /// <summary>One level on the way down: keys <c>block.{j}</c>, <c>attn.{j}</c>, <c>downsample</c>.</summary>
    private sealed class DownLevel : nn.Module
    {
#pragma warning disable IDE1006
        public readonly ModuleList<ResnetBlock> block;
        public readonly ModuleList<AttnBlock> attn;
        public readonly Downsample? downsample;
#pragma warning restore IDE1006

        public DownLevel(IEnumerable<ResnetBlock> blocks, IEnumerable<AttnBlock> attns, Downsample? downsample) : base(nameof(DownLevel))
        {
            block = new ModuleList<ResnetBlock>(blocks.ToArray());
            attn = new ModuleList<AttnBlock>(attns.ToArray());
            this.downsample = downsample;
            RegisterComponents();
        }
    }

    /// <summary>One level on the way up: keys <c>block.{j}</c>, <c>attn.{j}</c>, <c>upsample</c>.</summary>
    private sealed class UpLevel : nn.Module
    {
#pragma warning disable IDE1006
        public readonly ModuleList<ResnetBlock> block;
        public readonly ModuleList<AttnBlock> attn;
        public readonly Upsample? upsample;
#pragma warning restore IDE1006

        public UpLevel(IEnumerable<ResnetBlock> blocks, IEnumerable<AttnBlock> attns, Upsample? upsample) : base(nameof(UpLevel))
        {
            block = new ModuleList<ResnetBlock>(blocks.ToArray());
            attn = new ModuleList<AttnBlock>(attns.ToArray());
            this.upsample = upsample;
            RegisterComponents();
        }
    }

    /// <summary>The middle: keys <c>block_1</c>, <c>attn_1</c> (absent without <see cref="UNetConfig.MidAttention"/>), <c>block_2</c>.</summary>
    private sealed class MidBlock : nn.Module
    {
#pragma warning disable IDE1006
        public readonly ResnetBlock block_1;
        public readonly AttnBlock? attn_1;
        public readonly ResnetBlock block_2;
#pragma warning restore IDE1006

        public MidBlock(ResnetBlock block1, AttnBlock? attn, ResnetBlock block2) : base(nameof(MidBlock))
        {
            block_1 = block1;
            attn_1 = attn;
            block_2 = block2;
            RegisterComponents();
        }
    }
}

using System.Text.Json.Nodes;
using Ddpm.Models;

namespace Ddpm.Interop;

/// <summary>
/// diffusers' <c>UNet2DModel</c> configuration (<c>unet/config.json</c>) to and from this project's <see cref="UNetConfig"/>.
/// A key missing from the file takes <c>UNet2DModel</c>'s default, as diffusers itself reads it. A setting the project's
/// U-Net cannot express is refused with a one-line error naming it; so is a key this reader does not know, since what it
/// would change cannot be told.
/// </summary>
public static class DiffusersUNetConfig
{
    /// <summary>The diffusers version whose configuration keys <see cref="ToJson"/> writes.</summary>
    public const string DiffusersVersion = "0.30.0";

    /// <summary>
    /// UNet2DModel's defaults (diffusers' <c>unet_2d.py</c>) for every key this reader knows. Parsed from text so that every
    /// value reads back as a JSON number, string or list whatever its C# type would have been.
    /// </summary>
    private static JsonObject Defaults() => JsonNode.Parse("""
        {
          "sample_size": null, "in_channels": 3, "out_channels": 3, "center_input_sample": false,
          "time_embedding_type": "positional", "time_embedding_dim": null, "freq_shift": 0, "flip_sin_to_cos": true,
          "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
          "mid_block_type": "UNetMidBlock2D",
          "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
          "block_out_channels": [224, 448, 672, 896], "layers_per_block": 2, "mid_block_scale_factor": 1,
          "downsample_padding": 1, "downsample_type": "conv", "upsample_type": "conv", "dropout": 0.0,
          "act_fn": "silu", "attention_head_dim": 8, "norm_num_groups": 32, "attn_norm_num_groups": null,
          "norm_eps": 1e-5, "resnet_time_scale_shift": "default", "add_attention": true,
          "class_embed_type": null, "num_class_embeds": null, "num_train_timesteps": null
        }
        """)!.AsObject();

    /// <summary>Reads a UNet2DModel configuration (<paramref name="where"/> names the file in messages).</summary>
    public static UNetConfig FromJson(JsonObject json, string where)
    {
        ArgumentNullException.ThrowIfNull(json);
        var r = new Reader(json, where);
        string cls = r.Text("_class_name", "UNet2DModel");
        if (cls != "UNet2DModel") throw new DdpmException($"{where}: _class_name {cls}: expected UNet2DModel (the network of DDPMPipeline)");
        foreach (var (key, _) in json)
            if (!key.StartsWith('_') && !Defaults().ContainsKey(key))
                throw new DdpmException($"{where}: {key}: a setting this reader does not know (it reads the keys of diffusers up to {DiffusersVersion}+), so what it changes cannot be told");

        r.Require("center_input_sample", false, "the project's U-Net takes images in [-1, 1] as they are");
        r.Require("time_embedding_type", "positional", "the project's U-Net has the sinusoidal (positional) time code");
        r.Require("act_fn", "silu", "the project's U-Net uses swish (silu) throughout");
        r.Require("mid_block_type", "UNetMidBlock2D", "the project's U-Net has the middle block resnet, attention, resnet");
        r.Require("downsample_type", "conv", "the project's U-Net down-samples with a strided conv");
        r.Require("upsample_type", "conv", "the project's U-Net up-samples by nearest neighbours and a conv");
        r.Require("resnet_time_scale_shift", "default", "the project's residual blocks add the time embedding (no scale-shift)");
        r.RequireNull("class_embed_type", "the project's U-Net is unconditional");
        r.RequireNull("num_class_embeds", "the project's U-Net is unconditional");
        r.Require("mid_block_scale_factor", 1.0, "the project's middle block does not rescale its output");

        int[] channels = r.Ints("block_out_channels");
        if (channels.Length == 0 || channels.Any(c => c <= 0)) throw r.Bad("block_out_channels", "must list positive channel counts");
        int ch = channels[0];
        var mult = new int[channels.Length];
        for (int i = 0; i < channels.Length; i++)
        {
            if (channels[i] % ch != 0)
                throw r.Bad("block_out_channels", $"level {i} has {channels[i]} channels, not a multiple of the first level's {ch} (the project's U-Net has ch x multiplier channels per level)");
            mult[i] = channels[i] / ch;
        }
        if (r.Json["time_embedding_dim"] is JsonNode ted && ted.GetValue<double>() != 4 * ch)
            throw r.Bad("time_embedding_dim", $"must be 4 x {ch} (the project's time embedding is 4 ch wide)");

        string[] down = r.Texts("down_block_types"), up = r.Texts("up_block_types");
        int levels = channels.Length;
        if (down.Length != levels) throw r.Bad("down_block_types", $"lists {down.Length} blocks for {levels} levels of block_out_channels");
        if (up.Length != levels) throw r.Bad("up_block_types", $"lists {up.Length} blocks for {levels} levels of block_out_channels");
        int size = r.SampleSize();
        var attention = new List<int>();
        for (int i = 0; i < levels; i++)
        {
            bool downAttn = down[i] switch
            {
                "DownBlock2D" => false,
                "AttnDownBlock2D" => true,
                _ => throw r.Bad("down_block_types", $"{down[i]} at level {i}: the project's U-Net has DownBlock2D and AttnDownBlock2D only"),
            };
            string u = up[levels - 1 - i];
            bool upAttn = u switch
            {
                "UpBlock2D" => false,
                "AttnUpBlock2D" => true,
                _ => throw r.Bad("up_block_types", $"{u}: the project's U-Net has UpBlock2D and AttnUpBlock2D only"),
            };
            if (downAttn != upAttn)
                throw r.Bad("up_block_types", $"{u} mirrors {down[i]} at level {i}: the project's U-Net has attention on both ways of a level or on neither");
            if (downAttn)
            {
                if (size >> i << i != size) throw r.Bad("sample_size", $"{size} is not divisible by 2^{i} (level {i} has attention)");
                attention.Add(size >> i);
            }
        }
        int groups = r.Int("norm_num_groups");
        if (r.Json["attn_norm_num_groups"] is JsonNode ag && ag.GetValue<double>() != groups)
            throw r.Bad("attn_norm_num_groups", $"must be null or norm_num_groups {groups} (the project's attention normalises like its residual blocks)");
        // diffusers: heads of attention_head_dim channels in every attention block; null means one head per block.
        int headChannels = r.Json["attention_head_dim"] is null ? 0 : r.Int("attention_head_dim");
        if (headChannels < 0) throw r.Bad("attention_head_dim", "must be null or positive");
        int downsamplePadding = r.Int("downsample_padding");
        if (downsamplePadding is not (0 or 1)) throw r.Bad("downsample_padding", "the project's down-sampling pads right and bottom (0, the original) or all sides by one (1)");
        int inCh = r.Int("in_channels"), outCh = r.Int("out_channels");
        if (outCh != inCh && outCh != 2 * inCh)
            throw r.Bad("out_channels", $"{outCh}: must equal in_channels {inCh}, or twice it for a learned variance");
        double dropout = r.Number("dropout");
        var config = new UNetConfig
        {
            InChannels = inCh,
            OutChannels = outCh == inCh ? 0 : outCh,
            ImageSize = size,
            BaseChannels = ch,
            ChannelMult = mult,
            NumResBlocks = r.Int("layers_per_block"),
            AttentionResolutions = attention.ToArray(),
            Dropout = dropout,
            NormGroups = groups,
            ResampleWithConv = true,
            NormEps = r.Number("norm_eps"),
            FlipSinToCos = r.Flag("flip_sin_to_cos"),
            FreqShift = r.Number("freq_shift"),
            DownsamplePadding = downsamplePadding,
            AttentionHeadChannels = headChannels,
            MidAttention = r.Flag("add_attention"),
        };
        try
        {
            config.Validate();
        }
        catch (DdpmException e)
        {
            throw new DdpmException($"{where}: {e.Message}", e);
        }
        return config;
    }

    /// <summary>The UNet2DModel configuration of <paramref name="model"/>, every key written out (none left to diffusers' defaults).</summary>
    public static JsonObject ToJson(UNetConfig model)
    {
        ArgumentNullException.ThrowIfNull(model);
        model.Validate();
        if (!model.ResampleWithConv)
            throw new DdpmException("the model down-samples by average pooling (ResampleWithConv false): diffusers' UNet2DModel has no such layout");
        int levels = model.Levels;
        var down = new JsonArray();
        var up = new JsonArray();
        for (int i = 0; i < levels; i++) down.Add(model.HasAttentionAt(i) ? "AttnDownBlock2D" : "DownBlock2D");
        for (int i = levels - 1; i >= 0; i--) up.Add(model.HasAttentionAt(i) ? "AttnUpBlock2D" : "UpBlock2D");
        var json = new JsonObject
        {
            ["_class_name"] = "UNet2DModel",
            ["_diffusers_version"] = DiffusersVersion,
        };
        foreach (var (key, value) in Defaults()) json[key] = value?.DeepClone();
        json["sample_size"] = model.ImageSize;
        json["in_channels"] = model.InChannels;
        json["out_channels"] = model.EffectiveOutChannels;
        json["freq_shift"] = model.FreqShift;
        json["flip_sin_to_cos"] = model.FlipSinToCos;
        json["down_block_types"] = down;
        json["up_block_types"] = up;
        json["block_out_channels"] = new JsonArray(Enumerable.Range(0, levels).Select(i => (JsonNode?)model.ChannelsAt(i)).ToArray());
        json["layers_per_block"] = model.NumResBlocks;
        json["downsample_padding"] = model.DownsamplePadding;
        json["dropout"] = model.Dropout;
        json["attention_head_dim"] = model.AttentionHeadChannels == 0 ? null : model.AttentionHeadChannels;
        json["add_attention"] = model.MidAttention;
        json["norm_num_groups"] = model.NormGroups;
        json["norm_eps"] = model.NormEps;
        return json;
    }

    /// <summary>Typed reads of the file's keys, falling back to UNet2DModel's defaults; every error names the file and key.</summary>
    private sealed class Reader(JsonObject json, string where)
    {
        public JsonObject Json { get; } = Merge(json);

        private static JsonObject Merge(JsonObject json)
        {
            var all = Defaults();
            foreach (var (key, value) in json) all[key] = value?.DeepClone();
            return all;
        }

        public DdpmException Bad(string key, string problem) =>
            new($"{where}: {key} {Json[key]?.ToJsonString() ?? "null"}: {problem}");

        public string Text(string key, string fallback) => Json[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : fallback;

        public int Int(string key)
        {
            double d = Number(key);
            if (d != Math.Floor(d) || d < int.MinValue || d > int.MaxValue) throw Bad(key, "expected an integer");
            return (int)d;
        }

        public bool Flag(string key) =>
            Json[key] is JsonValue v && v.TryGetValue<bool>(out var b) ? b : throw Bad(key, "expected true or false");

        public double Number(string key)
        {
            if (Json[key] is JsonValue v && v.TryGetValue<double>(out var d)) return d;
            throw Bad(key, "expected a number");
        }

        public int[] Ints(string key) =>
            Json[key] is JsonArray a && a.All(n => n is JsonValue v && v.TryGetValue<double>(out var d) && d == Math.Floor(d))
                ? a.Select(n => (int)n!.GetValue<double>()).ToArray()
                : throw Bad(key, "expected a list of integers");

        public string[] Texts(string key) =>
            Json[key] is JsonArray a && a.All(n => n is JsonValue v && v.TryGetValue<string>(out _))
                ? a.Select(n => n!.GetValue<string>()).ToArray()
                : throw Bad(key, "expected a list of block names");

        public int SampleSize()
        {
            var node = Json["sample_size"];
            if (node is JsonArray pair && pair.Count == 2 && pair[0]?.ToJsonString() == pair[1]?.ToJsonString()) node = pair[0];
            if (node is JsonValue v && v.TryGetValue<double>(out var d) && d == Math.Floor(d) && d > 0) return (int)d;
            throw Bad("sample_size", "expected the side of the square images (an integer)");
        }

        public void Require(string key, object expected, string why)
        {
            var node = Json[key];
            bool ok = expected switch
            {
                bool b => node is JsonValue v && v.TryGetValue<bool>(out var x) && x == b,
                string s => node is JsonValue v && v.TryGetValue<string>(out var x) && x == s,
                int i => node is JsonValue v && v.TryGetValue<double>(out var x) && x == i,
                double d => node is JsonValue v && v.TryGetValue<double>(out var x) && Math.Abs(x - d) <= 1e-12 * Math.Max(1, Math.Abs(d)),
                _ => false,
            };
            if (!ok) throw Bad(key, $"the project cannot express it ({why}){(json.ContainsKey(key) ? "" : "; the key is missing, so it has diffusers' default")}");
        }

        public void RequireNull(string key, string why)
        {
            if (Json[key] is not null) throw Bad(key, $"the project cannot express it ({why})");
        }
    }
}

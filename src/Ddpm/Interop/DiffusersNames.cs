using System.Globalization;

namespace Ddpm.Interop;

/// <summary>
/// The state-dict names of diffusers' <c>UNet2DModel</c> for each name of this project's U-Net (those of the original's
/// PyTorch port). diffusers numbers its up blocks from the deepest level, the port from the full resolution, so an up
/// name needs the number of levels. Attention projections are 1x1 convolutions here and linear layers in diffusers: the
/// names map one to one and the weights differ only by two trailing unit dimensions (see <see cref="IsAttentionProjection"/>).
/// </summary>
public static class DiffusersNames
{
    private static readonly Dictionary<string, string> ResnetParts = new()
    {
        ["norm1"] = "norm1", ["conv1"] = "conv1", ["temb_proj"] = "time_emb_proj",
        ["norm2"] = "norm2", ["conv2"] = "conv2", ["nin_shortcut"] = "conv_shortcut",
    };

    /// <summary>Attention parts: the port's name, diffusers' name since its attention rewrite (2023), and the older one.</summary>
    private static readonly (string Port, string Diffusers, string Older)[] AttentionParts =
    [
        ("norm", "group_norm", "group_norm"), ("q", "to_q", "query"), ("k", "to_k", "key"), ("v", "to_v", "value"),
        ("proj_out", "to_out.0", "proj_attn"),
    ];

    /// <summary>diffusers' name (after its attention rewrite) of the port's <paramref name="key"/> in a U-Net of <paramref name="levels"/> levels.</summary>
    public static string ToDiffusers(string key, int levels) => Map(key, levels, older: false);

    /// <summary>The name diffusers used before its attention rewrite (query, key, value, proj_attn); other names are as <see cref="ToDiffusers"/>.</summary>
    public static string ToOlderDiffusers(string key, int levels) => Map(key, levels, older: true);

    /// <summary>Whether the port's <paramref name="key"/> is the weight of an attention q, k, v or output projection (a 1x1 conv here, a linear layer in diffusers).</summary>
    public static bool IsAttentionProjection(string key)
    {
        var p = key.Split('.');
        return p.Length >= 2 && p[^1] == "weight" && p[^2] is "q" or "k" or "v" or "proj_out"
            && (p[0] is "down" or "up" ? p.Length == 6 && p[2] == "attn" : p[0] == "mid" && p[1] == "attn_1");
    }

    private static string Map(string key, int levels, bool older)
    {
        var p = key.Split('.');
        string Rest(int from) => string.Join('.', p[from..]);
        switch (p[0])
        {
            case "temb" when p.Length == 4 && p[1] == "dense":
                return $"time_embedding.linear_{(p[2] == "0" ? 1 : p[2] == "1" ? 2 : throw Unknown(key))}.{p[3]}";
            case "conv_in" or "conv_out":
                return key;
            case "norm_out":
                return "conv_norm_out." + Rest(1);
            case "mid" when p.Length >= 3:
                return p[1] switch
                {
                    "block_1" => "mid_block.resnets.0." + Resnet(p[2..], key),
                    "block_2" => "mid_block.resnets.1." + Resnet(p[2..], key),
                    "attn_1" => "mid_block.attentions.0." + Attention(p[2..], older, key),
                    _ => throw Unknown(key),
                };
            case "down" or "up" when p.Length >= 4:
                int level = int.Parse(p[1], CultureInfo.InvariantCulture);
                if (level < 0 || level >= levels) throw Unknown(key);
                string block = p[0] == "down" ? $"down_blocks.{level}" : $"up_blocks.{levels - 1 - level}";
                return p[2] switch
                {
                    "block" when p.Length >= 5 => $"{block}.resnets.{p[3]}.{Resnet(p[4..], key)}",
                    "attn" when p.Length >= 5 => $"{block}.attentions.{p[3]}.{Attention(p[4..], older, key)}",
                    "downsample" when p[0] == "down" && p[3] == "conv" => $"{block}.downsamplers.0.{Rest(3)}",
                    "upsample" when p[0] == "up" && p[3] == "conv" => $"{block}.upsamplers.0.{Rest(3)}",
                    _ => throw Unknown(key),
                };
            default:
                throw Unknown(key);
        }
    }

    private static string Resnet(string[] rest, string key) =>
        rest.Length == 2 && ResnetParts.TryGetValue(rest[0], out var name) ? $"{name}.{rest[1]}" : throw Unknown(key);

    private static string Attention(string[] rest, bool older, string key)
    {
        if (rest.Length != 2) throw Unknown(key);
        foreach (var (port, diffusers, old) in AttentionParts)
            if (rest[0] == port) return $"{(older ? old : diffusers)}.{rest[1]}";
        throw Unknown(key);
    }

    private static ArgumentException Unknown(string key) => new($"not a state-dict name of the project's U-Net: {key}", nameof(key));
}

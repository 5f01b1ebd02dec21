using System.CommandLine;
using Ddpm.Distributed;

namespace Ddpm.Cli.Commands;

/// <summary>--shard INDEX/COUNT: one task of a cluster array job (see <see cref="Shard"/>).</summary>
public static class ShardOption
{
    public static Option<string?> Create(string description) => new("--shard") { Description = description, HelpName = "INDEX/COUNT" };

    /// <summary>The shard given, or null when the option is absent; a malformed value is a one-line error naming --shard.</summary>
    public static Shard? Parse(ParseResult parse, Option<string?> option) =>
        parse.GetValue(option) is string text ? Shard.Parse(text) : null;
}

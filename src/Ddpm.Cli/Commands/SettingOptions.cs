using Ddpm.Runs;
using System.CommandLine;
using System.Text.Json;
using Ddpm.Configuration;
using Ddpm.Training;

namespace Ddpm.Cli.Commands;

/// <summary>
/// The command line's spelling of the library's settings: a setting's flag is <c>--</c> + its key with '_' as '-'
/// (<c>learning_rate</c> -> <c>--learning-rate</c>). The options of <c>ddpm train</c> are made here from
/// <see cref="TrainConfig.Settings"/>, one per setting, so a setting declared in TrainConfig has its option, key and
/// help from that one declaration.
/// </summary>
public static class SettingOptions
{
    /// <summary>The flag of a setting key; also how the CLI spells a setting named by a library error.</summary>
    public static string Flag(string key) => "--" + key.Replace('_', '-');

    /// <summary>Older spellings of train's flags, kept working.</summary>
    public static IReadOnlyDictionary<string, string[]> LegacyAliases { get; } = new Dictionary<string, string[]>
    {
        ["learning_rate"] = ["--lr"],
        ["warmup_steps"] = ["--warmup"],
    };

    /// <summary>Defaults the command line fills in itself (the setting's own default is empty).</summary>
    private static readonly Dictionary<string, string> CliDefaults = new()
    {
        ["data"] = "the bundled MNIST digits",
    };

    /// <summary>One setting's option and how its parsed value reaches a configuration.</summary>
    public sealed record Binding(SettingInfo Setting, Option Option, Action<TrainConfig, ParseResult> Apply);

    /// <summary>The options of every train setting, in declaration order.</summary>
    public static IReadOnlyList<Binding> ForTrainConfig()
    {
        var defaults = new TrainConfig();
        var list = new List<Binding>();
        foreach (var s in TrainConfig.Settings)
        {
            var names = LegacyAliases.TryGetValue(s.Key, out var old) ? old : [];
            string help = s.Help + DefaultNote(s, defaults);
            var t = s.ValueType;
            list.Add(t == typeof(int) ? Typed<int>(s, names, help)
                : t == typeof(long) ? Typed<long>(s, names, help)
                : t == typeof(double) ? Typed<double>(s, names, help)
                : t == typeof(bool) ? Typed<bool>(s, names, help)
                : Text(s, names, help));
        }
        return list;
    }

    /// <summary>
    /// An old flag whose meaning changed (or that moved to a new name where keeping it would give one name two
    /// meanings): still parsed, so that giving it is a one-line syntax error naming the new flag.
    /// </summary>
    public static Option<string> Renamed(string oldFlag, string newFlag, string what)
    {
        var o = new Option<string>(oldFlag) { Hidden = true, Arity = ArgumentArity.ZeroOrOne };
        o.Validators.Add(r => r.AddError($"{oldFlag} is now {newFlag} ({what})"));
        return o;
    }

    private static Binding Typed<T>(SettingInfo s, string[] aliases, string help)
    {
        var opt = new Option<T>(Flag(s.Key), aliases) { Description = help };
        return new Binding(s, opt, (c, r) => s.Set(c, r.GetValue(opt)));
    }

    private static Binding Text(SettingInfo s, string[] aliases, string help)
    {
        var opt = new Option<string>(Flag(s.Key), aliases) { Description = help };
        return new Binding(s, opt, (c, r) => s.Set(c, TrainConfig.ParseSetting(s, r.GetValue(opt)!)));
    }

    private static string DefaultNote(SettingInfo s, TrainConfig defaults)
    {
        if (CliDefaults.TryGetValue(s.Key, out var note)) return $" (default: {note})";
        if (s.Help.Contains("(default", StringComparison.Ordinal)) return "";
        var v = s.Get(defaults);
        if (v is null or "" or false) return "";
        string text = v is string str ? str : JsonSerializer.Serialize(v, v.GetType(), TrainConfig.Json).Trim('"');
        return $" (default {text})";
    }
}

using System.Text.Json;
using System.Text.Json.Serialization;

namespace Ddpm.Configuration;

/// <summary>
/// The spellings of one enum-valued setting: each value's written name (the one saved in config.json) and the other
/// names it is read from. Reading ignores case, surrounding blanks, '-' and '_', so fixedlarge, fixed-large and
/// fixed_large are one name.
/// </summary>
public sealed class EnumNames<T> where T : struct, Enum
{
    private readonly (T Value, string Name, string[] Aliases)[] _entries;

    /// <summary>The setting's key (e.g. <c>variance</c>), named by the errors.</summary>
    public string Setting { get; }

    public EnumNames(string setting, params (T Value, string Name, string[] Aliases)[] entries)
    {
        Setting = setting;
        _entries = entries;
        foreach (T value in Enum.GetValues<T>())
            if (!entries.Any(e => e.Value.Equals(value)))
                throw new ArgumentException($"{setting}: no name for {value}");
    }

    /// <summary>The written names, in declaration order.</summary>
    public IReadOnlyList<string> Names => _entries.Select(e => e.Name).ToArray();

    /// <summary>"a, b or c": the written names for help texts and errors.</summary>
    public string Expected => Names.Count == 1 ? Names[0] : string.Join(", ", Names.Take(Names.Count - 1)) + " or " + Names[^1];

    /// <summary>The name <paramref name="value"/> is written as.</summary>
    public string Name(T value) => _entries.First(e => e.Value.Equals(value)).Name;

    public bool TryParse(string? text, out T value)
    {
        var key = Fold(text ?? "");
        foreach (var e in _entries)
        {
            if (Fold(e.Name) == key || e.Aliases.Any(a => Fold(a) == key))
            {
                value = e.Value;
                return true;
            }
        }
        value = default;
        return false;
    }

    /// <summary>The value named <paramref name="text"/>; an unknown name is a <see cref="DdpmException"/> naming the setting.</summary>
    public T Parse(string? text) =>
        TryParse(text, out var value) ? value : throw DdpmException.ForSetting(Setting, $"{text}: expected {Expected}");

    private static string Fold(string s) => s.Trim().ToLowerInvariant().Replace("-", "", StringComparison.Ordinal).Replace("_", "", StringComparison.Ordinal);
}

/// <summary>Writes an enum setting as its name and reads any of its spellings (see <see cref="EnumNames{T}"/>).</summary>
public sealed class EnumNameConverter<T>(EnumNames<T> names) : JsonConverter<T> where T : struct, Enum
{
    public override T Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String) throw new JsonException($"{names.Setting}: expected a string ({names.Expected})");
        return names.Parse(reader.GetString());
    }

    public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options) => writer.WriteStringValue(names.Name(value));
}

/// <summary>Reads and writes a setting type as the string its Parse reads and its ToString writes.</summary>
public sealed class TextValueConverter<T>(Func<string, T> parse) : JsonConverter<T> where T : class
{
    public override T Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String) throw new JsonException($"expected a string for {typeof(T).Name}");
        return parse(reader.GetString()!);
    }

    public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());
}

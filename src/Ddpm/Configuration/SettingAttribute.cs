using System.Reflection;
using System.Text.Json;

namespace Ddpm.Configuration;

/// <summary>
/// Declares a configuration property as a setting: its help text and whether it may change when a run resumes.
/// The property's JSON key comes from the configuration's naming policy, and a front end derives its own name for
/// the setting from that key (the CLI: <c>--</c> + key with '_' as '-'), so each setting is declared once.
/// </summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
public sealed class SettingAttribute(string help) : Attribute
{
    public string Help { get; } = help;

    /// <summary>May change when a run resumes (it does not alter the numerics of the steps taken).</summary>
    public bool Resumable { get; set; }
}

/// <summary>One declared setting of a configuration type.</summary>
public sealed class SettingInfo
{
    internal SettingInfo(PropertyInfo property, SettingAttribute declaration, string key)
    {
        Property = property;
        Key = key;
        Help = declaration.Help;
        Resumable = declaration.Resumable;
    }

    /// <summary>The JSON key, e.g. <c>learning_rate</c>.</summary>
    public string Key { get; }
    public string Help { get; }
    public bool Resumable { get; }
    public PropertyInfo Property { get; }

    /// <summary>The property's type with Nullable removed (int for int?).</summary>
    public Type ValueType => Nullable.GetUnderlyingType(Property.PropertyType) ?? Property.PropertyType;

    public object? Get(object config) => Property.GetValue(config);
    public void Set(object config, object? value) => Property.SetValue(config, value);
}

/// <summary>Reads the <see cref="SettingAttribute"/> declarations of a configuration type.</summary>
public static class SettingTable
{
    /// <summary>
    /// The settings of <typeparamref name="T"/> in declaration order. Every public instance property must be declared
    /// (an undeclared one is a programming error, reported here), so no setting lacks a key, a help text or a flag.
    /// </summary>
    public static IReadOnlyList<SettingInfo> Of<T>(JsonNamingPolicy naming)
    {
        ArgumentNullException.ThrowIfNull(naming);
        var list = new List<SettingInfo>();
        foreach (var p in typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance).OrderBy(p => p.MetadataToken))
        {
            var declaration = p.GetCustomAttribute<SettingAttribute>()
                ?? throw new InvalidOperationException($"{typeof(T).Name}.{p.Name} is not declared as a setting");
            list.Add(new SettingInfo(p, declaration, naming.ConvertName(p.Name)));
        }
        return list;
    }
}

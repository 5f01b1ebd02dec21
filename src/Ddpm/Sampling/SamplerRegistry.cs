namespace Ddpm.Sampling;

/// <summary>
/// The samplers by name: "ddpm" (ancestral), "ddim" and "dpm-solver" are built in, and users register their own with
/// <see cref="Register"/>. The CLI, the training-time grids and the evaluation pick samplers here, so a registered
/// sampler is available to all of them by its name. Thread-safe.
/// </summary>
public static class SamplerRegistry
{
    private sealed record Entry(string Name, string Description, Func<ISampler> Create);

    private static readonly object Gate = new();
    private static readonly List<Entry> Entries = new();
    private static readonly Dictionary<string, Entry> ByName = new(StringComparer.OrdinalIgnoreCase);

    static SamplerRegistry()
    {
        Register(AncestralSampler.RegistryName, "DDPM's ancestral sampler (all T steps, or respaced to fewer)", () => new AncestralSampler(), "ancestral");
        Register(DdimSampler.RegistryName, "DDIM with eta (0 = deterministic)", () => new DdimSampler());
        Register(DpmSolverSampler.RegistryName, "DPM-Solver++(2M), deterministic", () => new DpmSolverSampler(),
            "dpmsolver", "dpm-solver++", "dpmsolver++", "dpm");
    }

    /// <summary>The registered names in registration order (the built-in ones first).</summary>
    public static IReadOnlyList<string> Names
    {
        get { lock (Gate) return Entries.Select(e => e.Name).ToArray(); }
    }

    /// <summary>"ddpm, ddim or dpm-solver": the names for messages and help texts.</summary>
    public static string NameList
    {
        get
        {
            var names = Names;
            return names.Count == 1 ? names[0] : string.Join(", ", names.Take(names.Count - 1)) + " or " + names[^1];
        }
    }

    /// <summary>A one-line description of a registered sampler.</summary>
    public static string Description(string name) => Find(name).Description;

    /// <summary>
    /// Registers a sampler: <paramref name="create"/> returns it with its default options (change them with
    /// <see cref="ISampler.With"/>). Names and aliases are case-insensitive and must not be taken.
    /// </summary>
    public static void Register(string name, string description, Func<ISampler> create, params string[] aliases)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(create);
        var entry = new Entry(name.Trim(), description ?? "", create);
        lock (Gate)
        {
            foreach (var n in aliases.Prepend(entry.Name))
                if (ByName.ContainsKey(n.Trim())) throw new DdpmException($"sampler {n}: the name is already registered");
            Entries.Add(entry);
            foreach (var n in aliases.Prepend(entry.Name)) ByName[n.Trim()] = entry;
        }
    }

    /// <summary>Whether the name (or an alias) is registered.</summary>
    public static bool IsRegistered(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        lock (Gate) return ByName.ContainsKey(name.Trim());
    }

    /// <summary>The registered name for a name or alias (any case); a one-line <see cref="DdpmException"/> for an unknown one.</summary>
    public static string Resolve(string name) => Find(name).Name;

    /// <summary>A new sampler by name with its default options.</summary>
    public static ISampler Create(string name) => Find(name).Create();

    /// <summary>A new sampler by name with the shared options set (steps, spacing, timesteps, threshold) and its own left at their defaults.</summary>
    public static ISampler Create(string name, Func<SamplerOptions, SamplerOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        var sampler = Create(name);
        return sampler.With(configure(sampler.Options));
    }

    private static Entry Find(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        lock (Gate)
            if (ByName.TryGetValue(name.Trim(), out var entry)) return entry;
        throw new DdpmException($"sampler {name}: expected {NameList}");
    }

    internal static DdpmException WrongOptions(string sampler, SamplerOptions options) =>
        new($"sampler {sampler}: options of type {options?.GetType().Name ?? "null"} belong to another sampler");
}

using System.Reflection;
using System.Reflection.Emit;
using System.Text.RegularExpressions;

namespace Ddpm.Tests.Architecture;

/// <summary>
/// Which namespace of the library uses which, read two ways: from the compiled assembly (every type's base types,
/// interfaces, attributes, member signatures, locals and the types, fields and methods its IL names) and from the
/// sources' <c>using Ddpm.X;</c> lines. Constants are inlined by the compiler and leave no trace in IL; the using
/// lines cover them.
/// </summary>
public static partial class NamespaceGraph
{
    private const BindingFlags Declared = BindingFlags.DeclaredOnly | BindingFlags.Public | BindingFlags.NonPublic |
                                          BindingFlags.Instance | BindingFlags.Static;

    /// <summary>Namespace -> the other namespaces under <paramref name="root"/> it uses, from the compiled assembly.</summary>
    public static Dictionary<string, SortedSet<string>> FromAssembly(Assembly assembly, string root)
    {
        var graph = new Dictionary<string, SortedSet<string>>(StringComparer.Ordinal);
        foreach (var type in assembly.GetTypes())
        {
            if (!InRoot(type.Namespace, root)) continue;
            var edges = Edges(graph, type.Namespace!);
            foreach (var used in ReferencedTypes(type))
                if (InRoot(used.Namespace, root) && used.Namespace != type.Namespace) edges.Add(used.Namespace!);
        }
        return graph;
    }

    /// <summary>Namespace -> the namespaces under <paramref name="root"/> its files import, from the sources.</summary>
    public static Dictionary<string, SortedSet<string>> FromSources(string folder, string root)
    {
        var graph = new Dictionary<string, SortedSet<string>>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(folder, "*.cs", SearchOption.AllDirectories))
        {
            if (file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") ||
                file.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}")) continue;
            var text = File.ReadAllText(file);
            var ns = NamespaceLine().Match(text);
            if (!ns.Success || !InRoot(ns.Groups[1].Value, root)) continue;
            var from = ns.Groups[1].Value;
            var edges = Edges(graph, from);
            foreach (Match u in UsingLine().Matches(text))
            {
                // "using Ddpm.X;", "using static Ddpm.X.Type;" and "using Alias = Ddpm.X.Type;": the namespace is the
                // longest prefix that is one of the library's namespaces, known once every file is read.
                var target = u.Groups[1].Value;
                if (InRoot(target, root) && target != from) edges.Add(target);
            }
        }
        // Reduce "Ddpm.X.Type" (from using static / aliases) to the namespace that declares it.
        var known = graph.Keys.ToHashSet(StringComparer.Ordinal);
        foreach (var edges in graph.Values)
        {
            var fixedUp = edges.Select(e => LongestKnownPrefix(e, known) ?? e).ToList();
            edges.Clear();
            edges.UnionWith(fixedUp);
        }
        foreach (var (from, edges) in graph) edges.Remove(from);
        return graph;
    }

    /// <summary>The union of two graphs.</summary>
    public static Dictionary<string, SortedSet<string>> Union(
        IReadOnlyDictionary<string, SortedSet<string>> a, IReadOnlyDictionary<string, SortedSet<string>> b)
    {
        var graph = new Dictionary<string, SortedSet<string>>(StringComparer.Ordinal);
        foreach (var g in new[] { a, b })
            foreach (var (from, edges) in g)
                Edges(graph, from).UnionWith(edges);
        return graph;
    }

    /// <summary>
    /// A cycle of <paramref name="graph"/> as the path of its nodes with the first repeated at the end
    /// (A, B, A), or null when the graph is acyclic. Depth-first search with three colours: an edge to a node still
    /// on the stack closes a cycle.
    /// </summary>
    public static IReadOnlyList<string>? FindCycle(IReadOnlyDictionary<string, SortedSet<string>> graph)
    {
        var state = new Dictionary<string, int>(StringComparer.Ordinal); // absent: unvisited, 1: on the stack, 2: done
        var stack = new List<string>();

        IReadOnlyList<string>? Visit(string node)
        {
            state[node] = 1;
            stack.Add(node);
            if (graph.TryGetValue(node, out var next))
            {
                foreach (var n in next)
                {
                    state.TryGetValue(n, out int s);
                    if (s == 1) return stack.Skip(stack.IndexOf(n)).Append(n).ToList();
                    if (s == 0 && Visit(n) is { } found) return found;
                }
            }
            stack.RemoveAt(stack.Count - 1);
            state[node] = 2;
            return null;
        }

        foreach (var node in graph.Keys.Order(StringComparer.Ordinal))
            if (!state.ContainsKey(node) && Visit(node) is { } cycle) return cycle;
        return null;
    }

    /// <summary>Every type <paramref name="type"/>'s declaration and code name (generic arguments and element types included).</summary>
    public static HashSet<Type> ReferencedTypes(Type type)
    {
        var found = new HashSet<Type>();
        void Add(Type? t)
        {
            if (t is null || t.IsGenericParameter) return;
            if (t.HasElementType) { Add(t.GetElementType()); return; }
            if (t.IsGenericType && !t.IsGenericTypeDefinition)
            {
                foreach (var a in t.GetGenericArguments()) Add(a);
                t = t.GetGenericTypeDefinition();
            }
            found.Add(t);
        }
        void AddAttributes(IEnumerable<CustomAttributeData> attributes)
        {
            foreach (var a in attributes)
            {
                Add(a.AttributeType);
                foreach (var arg in a.ConstructorArguments.Concat(a.NamedArguments.Select(n => n.TypedValue)))
                    if (arg.Value is Type t) Add(t);
            }
        }
        void AddMember(MemberInfo? m)
        {
            switch (m)
            {
                case Type t: Add(t); break;
                case FieldInfo f: Add(f.DeclaringType); Add(f.FieldType); break;
                case MethodBase mb:
                    Add(mb.DeclaringType);
                    if (mb is MethodInfo mi) Add(mi.ReturnType);
                    foreach (var p in mb.GetParameters()) Add(p.ParameterType);
                    if (mb.IsGenericMethod) foreach (var a in mb.GetGenericArguments()) Add(a);
                    break;
            }
        }

        Add(type.BaseType);
        foreach (var i in type.GetInterfaces()) Add(i);
        AddAttributes(type.GetCustomAttributesData());
        foreach (var f in type.GetFields(Declared)) { Add(f.FieldType); AddAttributes(f.GetCustomAttributesData()); }
        foreach (var p in type.GetProperties(Declared)) { Add(p.PropertyType); AddAttributes(p.GetCustomAttributesData()); }
        foreach (var e in type.GetEvents(Declared)) Add(e.EventHandlerType);
        foreach (var m in type.GetMethods(Declared).Cast<MethodBase>().Concat(type.GetConstructors(Declared)))
        {
            AddMember(m);
            AddAttributes(m.GetCustomAttributesData());
            foreach (var p in m.GetParameters()) AddAttributes(p.GetCustomAttributesData());
            var body = m.GetMethodBody();
            if (body is null) continue;
            foreach (var local in body.LocalVariables) Add(local.LocalType);
            foreach (var member in IlReferences(m, body)) AddMember(member);
        }
        return found;
    }

    /// <summary>The types, fields and methods named by the tokens of <paramref name="method"/>'s IL.</summary>
    private static IEnumerable<MemberInfo> IlReferences(MethodBase method, MethodBody body)
    {
        var il = body.GetILAsByteArray() ?? [];
        var typeArgs = method.DeclaringType is { IsGenericType: true } d ? d.GetGenericArguments() : null;
        var methodArgs = method.IsGenericMethod ? method.GetGenericArguments() : null;
        var module = method.Module;
        for (int i = 0; i < il.Length;)
        {
            OpCode op;
            if (il[i] == 0xFE) { op = TwoByte[il[i + 1]]; i += 2; }
            else { op = OneByte[il[i]]; i += 1; }
            switch (op.OperandType)
            {
                case OperandType.InlineField:
                case OperandType.InlineMethod:
                case OperandType.InlineType:
                case OperandType.InlineTok:
                    int token = BitConverter.ToInt32(il, i);
                    yield return module.ResolveMember(token, typeArgs, methodArgs)
                        ?? throw new InvalidOperationException($"{method.DeclaringType}.{method.Name}: token {token:X8} resolves to nothing");
                    i += 4;
                    break;
                case OperandType.InlineSwitch:
                    i += 4 + 4 * BitConverter.ToInt32(il, i);
                    break;
                default:
                    i += OperandSize(op.OperandType);
                    break;
            }
        }
    }

    private static int OperandSize(OperandType type) => type switch
    {
        OperandType.InlineNone => 0,
        OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
        OperandType.InlineVar => 2,
        OperandType.InlineI8 or OperandType.InlineR => 8,
        _ => 4, // InlineBrTarget, InlineI, ShortInlineR, InlineSig, InlineString
    };

    private static readonly OpCode[] OneByte = new OpCode[256];
    private static readonly OpCode[] TwoByte = new OpCode[256];

    static NamespaceGraph()
    {
        foreach (var f in typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static))
        {
            if (f.GetValue(null) is not OpCode op) continue;
            ushort v = unchecked((ushort)op.Value);
            if (op.Size == 1) OneByte[v] = op;
            else TwoByte[v & 0xFF] = op;
        }
    }

    private static bool InRoot(string? ns, string root) =>
        ns is not null && (ns == root || ns.StartsWith(root + ".", StringComparison.Ordinal));

    private static SortedSet<string> Edges(Dictionary<string, SortedSet<string>> graph, string from)
    {
        if (!graph.TryGetValue(from, out var edges)) graph[from] = edges = new SortedSet<string>(StringComparer.Ordinal);
        return edges;
    }

    private static string? LongestKnownPrefix(string name, HashSet<string> known)
    {
        for (var n = name; ; n = n[..n.LastIndexOf('.')])
        {
            if (known.Contains(n)) return n;
            if (!n.Contains('.')) return null;
        }
    }

    [GeneratedRegex(@"^\s*namespace\s+([\w.]+)\s*[;{]", RegexOptions.Multiline)]
    private static partial Regex NamespaceLine();

    [GeneratedRegex(@"^\s*(?:global\s+)?using\s+(?:static\s+)?(?:\w+\s*=\s*)?([\w.]+)\s*;", RegexOptions.Multiline)]
    private static partial Regex UsingLine();
}

using System.Numerics;
using System.Text;
using static TorchSharp.torch;

namespace Ddpm.IO;

/// <summary>A Python dict (or OrderedDict) read from a pickle, in insertion order.</summary>
internal sealed class PickleDict
{
    public Dictionary<object, object?> Items { get; } = new();
}

/// <summary>A module-level name a pickle refers to (opcode GLOBAL), e.g. collections.OrderedDict.</summary>
internal sealed record PickleGlobal(string Module, string Name)
{
    public override string ToString() => $"{Module}.{Name}";
}

/// <summary>
/// A pickle reader for PyTorch state dicts (protocols 2 to 5). It builds plain values (ints, floats, strings, tuples as
/// object[], lists, <see cref="PickleDict"/>) and knows four kinds of global: collections.OrderedDict, the tensor
/// rebuild functions of torch._utils (as <see cref="TensorRef"/>), torch.nn.Parameter's rebuild (the tensor itself) and
/// the storage types named in persistent ids. Any other callable is refused, so a file cannot run code.
/// Reads exactly one pickle (up to its STOP opcode) from the reader.
/// </summary>
internal sealed class StateDictUnpickler
{
    private readonly BinaryReader _r;
    private readonly Action<StorageRef>? _onStorage;
    private readonly List<object?> _stack = new();
    private readonly Stack<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = new();

    public StateDictUnpickler(BinaryReader reader, Action<StorageRef>? onStorage = null)
    {
        _r = reader;
        _onStorage = onStorage;
    }

    public object? Load()
    {
        while (true)
        {
            byte op = _r.ReadByte();
            switch (op)
            {
                case 0x80: _r.ReadByte(); break;                                  // PROTO
                case 0x95: _r.ReadInt64(); break;                                 // FRAME (length; we read straight through)
                case (byte)'.': return Pop();                                     // STOP
                case (byte)'(': _marks.Push(_stack.Count); break;                 // MARK
                case (byte)')': Push(Array.Empty<object?>()); break;              // EMPTY_TUPLE
                case (byte)']': Push(new List<object?>()); break;                 // EMPTY_LIST
                case (byte)'}': Push(new PickleDict()); break;                    // EMPTY_DICT
                case (byte)'t': Push(PopToMark().ToArray()); break;               // TUPLE
                case 0x85: Push(new[] { Pop() }); break;                          // TUPLE1
                case 0x86: { var b = Pop(); var a = Pop(); Push(new[] { a, b }); break; }             // TUPLE2
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new[] { a, b, c }); break; } // TUPLE3
                case (byte)'l': Push(PopToMark()); break;                         // LIST
                case (byte)'d': { var d = new PickleDict(); SetItems(d, PopToMark()); Push(d); break; } // DICT
                case (byte)'a': { var v = Pop(); AsList(Top()).Add(v); break; }   // APPEND
                case (byte)'e': { var vs = PopToMark(); AsList(Top()).AddRange(vs); break; } // APPENDS
                case (byte)'s': { var v = Pop(); var k = Pop(); SetItems(AsDict(Top()), new List<object?> { k, v }); break; } // SETITEM
                case (byte)'u': { var kv = PopToMark(); SetItems(AsDict(Top()), kv); break; } // SETITEMS
                case (byte)'N': Push(null); break;                                // NONE
                case 0x88: Push(true); break;                                     // NEWTRUE
                case 0x89: Push(false); break;                                    // NEWFALSE
                case (byte)'K': Push((long)_r.ReadByte()); break;                 // BININT1
                case (byte)'M': Push((long)_r.ReadUInt16()); break;               // BININT2
                case (byte)'J': Push((long)_r.ReadInt32()); break;                // BININT
                case 0x8A: Push(ReadLong(_r.ReadByte())); break;                  // LONG1
                case 0x8B: Push(ReadLong(_r.ReadInt32())); break;                 // LONG4
                case (byte)'G': Push(BitConverter.Int64BitsToDouble(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(_r.ReadInt64()))); break; // BINFLOAT (big-endian)
                case (byte)'X': Push(ReadUtf8(_r.ReadUInt32())); break;           // BINUNICODE
                case 0x8C: Push(ReadUtf8(_r.ReadByte())); break;                  // SHORT_BINUNICODE
                case 0x8D: Push(ReadUtf8(_r.ReadUInt64())); break;                // BINUNICODE8
                case (byte)'T': Push(Encoding.Latin1.GetString(ReadExactly(_r.ReadUInt32()))); break; // BINSTRING
                case (byte)'U': Push(Encoding.Latin1.GetString(ReadExactly(_r.ReadByte()))); break;   // SHORT_BINSTRING
                case (byte)'B': Push(ReadExactly(_r.ReadUInt32())); break;        // BINBYTES
                case (byte)'C': Push(ReadExactly(_r.ReadByte())); break;          // SHORT_BINBYTES
                case (byte)'c': { var m = ReadLine(); var n = ReadLine(); Push(new PickleGlobal(m, n)); break; } // GLOBAL
                case 0x93: { var n = (string)Pop()!; var m = (string)Pop()!; Push(new PickleGlobal(m, n)); break; } // STACK_GLOBAL
                case (byte)'q': _memo[_r.ReadByte()] = Top(); break;              // BINPUT
                case (byte)'r': _memo[_r.ReadUInt32()] = Top(); break;            // LONG_BINPUT
                case 0x94: _memo[_memo.Count] = Top(); break;                     // MEMOIZE
                case (byte)'h': Push(Get(_r.ReadByte())); break;                  // BINGET
                case (byte)'j': Push(Get(_r.ReadUInt32())); break;                // LONG_BINGET
                case (byte)'R':                                                   // REDUCE
                case 0x81:                                                        // NEWOBJ
                    { var args = Pop() as object?[] ?? throw Bad("call arguments are not a tuple"); var f = Pop(); Push(Call(f, args)); break; }
                case (byte)'b': Pop(); break;                                     // BUILD: the state of an OrderedDict (its _metadata) is not needed
                case (byte)'Q': Push(PersistentLoad(Pop())); break;               // BINPERSID
                default: throw Bad($"unsupported pickle opcode 0x{op:x2}");
            }
        }
    }

    private object? Call(object? callable, object?[] args)
    {
        if (callable is not PickleGlobal g) throw Bad("call of a non-global");
        switch (g.ToString())
        {
            case "collections.OrderedDict":
                {
                    // OrderedDict() or OrderedDict(pairs), e.g. OrderedDict(()) as TorchSharp.PyBridge writes it.
                    var d = new PickleDict();
                    if (args.Length > 1) throw Bad("OrderedDict with more than one argument");
                    if (args.Length == 1)
                    {
                        IEnumerable<object?> pairs = args[0] switch
                        {
                            object?[] tuple => tuple,
                            List<object?> l => l,
                            _ => throw Bad("OrderedDict of something other than pairs"),
                        };
                        foreach (var p in pairs)
                            if (p is object?[] { Length: 2 } kv) SetItems(d, new List<object?> { kv[0], kv[1] });
                            else throw Bad("OrderedDict of something other than pairs");
                    }
                    return d;
                }
            case "torch._utils._rebuild_tensor":
            case "torch._utils._rebuild_tensor_v2":
                // (storage, storage_offset, size, stride[, requires_grad, backward_hooks[, metadata]])
                if (args.Length < 4 || args[0] is not StorageRef s) throw Bad($"{g} with unexpected arguments");
                return new TensorRef(s, PthFile.AsLong(args[1]), Longs(args[2]), Longs(args[3]));
            case "torch._utils._rebuild_parameter":
                return args.Length > 0 && args[0] is TensorRef t ? t : throw Bad($"{g} with unexpected arguments");
            default:
                throw Bad($"the file calls {g}, which a state dict does not need (refused)");
        }
    }

    /// <summary>torch.save's persistent id of a storage: ('storage', type, key, location, numel[, view_metadata]).</summary>
    private object PersistentLoad(object? pid)
    {
        if (pid is not object?[] t || t.Length < 5 || t[0] as string != "storage")
            throw Bad("unknown persistent id (not a torch storage)");
        if (t.Length > 5 && t[5] is not null) throw new NotSupportedException("storage views (pre-1.0 torch.save files) are not supported");
        var type = t[1] as PickleGlobal ?? throw Bad("storage type is not a global");
        var s = new StorageRef(t[2] as string ?? Convert.ToString(t[2], System.Globalization.CultureInfo.InvariantCulture)!,
            StorageDType(type.Name), PthFile.AsLong(t[4]));
        _onStorage?.Invoke(s);
        return s;
    }

    private static ScalarType StorageDType(string name) => name switch
    {
        "FloatStorage" => ScalarType.Float32,
        "DoubleStorage" => ScalarType.Float64,
        "HalfStorage" => ScalarType.Float16,
        "BFloat16Storage" => ScalarType.BFloat16,
        "LongStorage" => ScalarType.Int64,
        "IntStorage" => ScalarType.Int32,
        "ShortStorage" => ScalarType.Int16,
        "CharStorage" => ScalarType.Int8,
        "ByteStorage" => ScalarType.Byte,
        "BoolStorage" => ScalarType.Bool,
        _ => throw new NotSupportedException($"storage type {name} is not supported"),
    };

    private static long[] Longs(object? o) => o is object?[] a ? a.Select(PthFile.AsLong).ToArray() : throw Bad("tensor size or stride is not a tuple");

    private static void SetItems(PickleDict d, List<object?> kv)
    {
        if (kv.Count % 2 != 0) throw Bad("odd number of dict items");
        for (int i = 0; i < kv.Count; i += 2) d.Items[kv[i] ?? throw Bad("None as a dict key")] = kv[i + 1];
    }

    private static List<object?> AsList(object? o) => o as List<object?> ?? throw Bad("append to a non-list");

    private static PickleDict AsDict(object? o) => o as PickleDict ?? throw Bad("set item on a non-dict");

    private object ReadLong(long n)
    {
        var bytes = ReadExactly(n);
        var v = new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
        return v >= long.MinValue && v <= long.MaxValue ? (long)v : v;
    }

    private string ReadUtf8(ulong n) => Encoding.UTF8.GetString(ReadExactly((long)n));

    private byte[] ReadExactly(long n)
    {
        if (n < 0 || n > int.MaxValue) throw Bad("string or bytes too long");
        var b = _r.ReadBytes((int)n);
        if (b.Length != n) throw new EndOfStreamException("file ends inside the pickle");
        return b;
    }

    private string ReadLine()
    {
        var sb = new StringBuilder();
        for (byte c = _r.ReadByte(); c != (byte)'\n'; c = _r.ReadByte()) sb.Append((char)c);
        return sb.ToString();
    }

    private object? Get(long key) => _memo.TryGetValue(key, out var v) ? v : throw Bad($"memo key {key} unset");

    private void Push(object? o) => _stack.Add(o);

    private object? Top() => _stack.Count > 0 ? _stack[^1] : throw Bad("stack underflow");

    private object? Pop()
    {
        var o = Top();
        _stack.RemoveAt(_stack.Count - 1);
        return o;
    }

    private List<object?> PopToMark()
    {
        if (_marks.Count == 0) throw Bad("no mark");
        int at = _marks.Pop();
        var items = _stack.GetRange(at, _stack.Count - at);
        _stack.RemoveRange(at, _stack.Count - at);
        return items;
    }

    private static InvalidDataException Bad(string what) => new($"bad pickle: {what}");
}

using System.Runtime.InteropServices;

namespace Ddpm.Distributed;

/// <summary>
/// <see cref="ICommunicator"/> over the system's MPI library (Open MPI or MPICH, as the OS packages install them),
/// through a handful of its C functions: init, rank, size, allreduce, bcast, barrier, abort, finalize. The library is
/// loaded only when a job was launched by mpirun or srun (<see cref="MpiEnvironment"/>), so a plain process needs no MPI.
/// <para>
/// MPI's handles are macros in C: Open MPI's are the addresses of exported objects (<c>ompi_mpi_comm_world</c>, ...),
/// MPICH's are fixed integers. Both fit a pointer-sized argument (an int argument is read from the low half of its
/// register on x86-64 and arm64). Open MPI loads its plug-ins with the library's symbols in scope, so the library is
/// opened with RTLD_GLOBAL first, as mpi4py does.
/// </para>
/// </summary>
public sealed class MpiCommunicator : ICommunicator
{
    public int Rank { get; }
    public int Size { get; }
    public int LocalRank { get; }
    /// <summary>The library loaded and its implementation, for messages (e.g. "libmpi.so.40 (Open MPI)").</summary>
    public string Library { get; }

    private readonly Api _api;
    private bool _finalized;

    private MpiCommunicator(Api api, string library, int localRank)
    {
        _api = api;
        Library = library;
        Check(api.Init(0, 0), "MPI_Init");
        Check(api.CommRank(api.CommWorld, out int rank), "MPI_Comm_rank");
        Check(api.CommSize(api.CommWorld, out int size), "MPI_Comm_size");
        Rank = rank;
        Size = size;
        LocalRank = localRank;
    }

    /// <summary>
    /// Initialises MPI from the library named by <c>DDPM_MPI_LIBRARY</c>, or the first of libmpi.so.40 (Open MPI),
    /// libmpi.so.12 (MPICH) and libmpi.so that loads. A one-line error names what was tried when none does.
    /// </summary>
    public static MpiCommunicator Initialize(int localRank)
    {
        var names = Environment.GetEnvironmentVariable("DDPM_MPI_LIBRARY") is { Length: > 0 } given
            ? new[] { given } : new[] { "libmpi.so.40", "libmpi.so.12", "libmpi.so" };
        foreach (var name in names)
        {
            if (Dl.Open(name) == 0) continue;
            if (!NativeLibrary.TryLoad(name, out var handle)) continue;
            var api = Api.Bind(handle, out string kind);
            return new MpiCommunicator(api, $"{name} ({kind})", localRank);
        }
        throw new DdpmException($"the job was launched by MPI but no MPI library loads (tried {string.Join(", ", names)}): install Open MPI or MPICH, or name the library in DDPM_MPI_LIBRARY");
    }

    // The receive buffers, kept between calls: training reduces the same length every step (143 MB for ho-cifar10).
    private float[] _floatReceive = [];
    private double[] _doubleReceive = [];

    public void AllReduceSum(float[] buffer) => WithPinned(buffer, send => WithPinned(Reuse(ref _floatReceive, buffer.Length), recv =>
    {
        Check(_api.Allreduce(send, recv, buffer.Length, _api.Float, _api.Sum, _api.CommWorld), "MPI_Allreduce");
        Marshal.Copy(recv, buffer, 0, buffer.Length);
    }));

    public void AllReduceSum(double[] buffer) => WithPinned(buffer, send => WithPinned(Reuse(ref _doubleReceive, buffer.Length), recv =>
    {
        Check(_api.Allreduce(send, recv, buffer.Length, _api.Double, _api.Sum, _api.CommWorld), "MPI_Allreduce");
        Marshal.Copy(recv, buffer, 0, buffer.Length);
    }));

    public void Broadcast(float[] buffer, int root = 0) =>
        WithPinned(buffer, p => Check(_api.Bcast(p, buffer.Length, _api.Float, root, _api.CommWorld), "MPI_Bcast"));

    public void Broadcast(byte[] buffer, int root = 0) =>
        WithPinned(buffer, p => Check(_api.Bcast(p, buffer.Length, _api.Byte, root, _api.CommWorld), "MPI_Bcast"));

    public void Barrier() => Check(_api.Barrier(_api.CommWorld), "MPI_Barrier");

    /// <summary>Stops every process of the job (after an error on this one that the others cannot learn of otherwise).</summary>
    public void Abort(int code) => _api.Abort(_api.CommWorld, code);

    public void Dispose()
    {
        if (_finalized) return;
        _finalized = true;
        _api.Finalize();
    }

    private static T[] Reuse<T>(ref T[] kept, int length) => kept.Length == length ? kept : kept = new T[length];

    private static void WithPinned(Array array, Action<nint> use)
    {
        var handle = GCHandle.Alloc(array, GCHandleType.Pinned);
        try { use(handle.AddrOfPinnedObject()); }
        finally { handle.Free(); }
    }

    private static void Check(int code, string call)
    {
        if (code != 0) throw new DdpmException($"{call} failed with MPI error code {code}");
    }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int InitFn(nint argc, nint argv);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int CommIntFn(nint comm, out int value);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int AllreduceFn(nint send, nint recv, int count, nint type, nint op, nint comm);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int BcastFn(nint buffer, int count, nint type, int root, nint comm);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int CommFn(nint comm);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int AbortFn(nint comm, int code);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int VoidFn();

    /// <summary>The functions and handles of one MPI implementation.</summary>
    private sealed record Api(InitFn Init, CommIntFn CommRank, CommIntFn CommSize, AllreduceFn Allreduce, BcastFn Bcast,
        CommFn Barrier, AbortFn Abort, VoidFn Finalize, nint CommWorld, nint Float, nint Double, nint Byte, nint Sum)
    {
        public static Api Bind(nint lib, out string kind)
        {
            T Fn<T>(string name) where T : Delegate => Marshal.GetDelegateForFunctionPointer<T>(NativeLibrary.GetExport(lib, name));
            bool openMpi = NativeLibrary.TryGetExport(lib, "ompi_mpi_comm_world", out var world);
            kind = openMpi ? "Open MPI" : "MPICH";
            // MPICH's mpi.h: MPI_COMM_WORLD 0x44000000, MPI_FLOAT 0x4c00040a, MPI_DOUBLE 0x4c00080b, MPI_BYTE 0x4c00010d, MPI_SUM 0x58000003.
            nint Handle(string ompi, int mpich) => openMpi ? NativeLibrary.GetExport(lib, ompi) : mpich;
            return new Api(Fn<InitFn>("MPI_Init"), Fn<CommIntFn>("MPI_Comm_rank"), Fn<CommIntFn>("MPI_Comm_size"),
                Fn<AllreduceFn>("MPI_Allreduce"), Fn<BcastFn>("MPI_Bcast"), Fn<CommFn>("MPI_Barrier"), Fn<AbortFn>("MPI_Abort"),
                Fn<VoidFn>("MPI_Finalize"),
                openMpi ? world : 0x44000000, Handle("ompi_mpi_float", 0x4c00040a), Handle("ompi_mpi_double", 0x4c00080b),
                Handle("ompi_mpi_byte", 0x4c00010d), Handle("ompi_mpi_op_sum", 0x58000003));
        }
    }

    /// <summary>dlopen with RTLD_NOW | RTLD_GLOBAL (glibc's values), so that Open MPI's plug-ins find the library's symbols.</summary>
    private static class Dl
    {
        [DllImport("libc", EntryPoint = "dlopen")]
        private static extern nint DlOpen(string file, int mode);

        public static nint Open(string name)
        {
            try { return DlOpen(name, 0x2 | 0x100); }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return 0; }
        }
    }
}

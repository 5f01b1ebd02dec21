using System.Globalization;

namespace Ddpm.Distributed;

/// <summary>
/// Whether this process is one of several launched by MPI (mpirun/mpiexec of Open MPI or MPICH, or Slurm's srun with
/// PMI), read from the variables the launchers set, before any MPI library is touched.
/// </summary>
public static class MpiEnvironment
{
    /// <summary>The job's process count as the launcher announced it; 1 for a process not launched by MPI.</summary>
    public static int WorldSize => FirstInt("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS") ?? 1;

    /// <summary>The index of this process among those of its machine (0 without a launcher).</summary>
    public static int LocalRank => FirstInt("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK", "SLURM_LOCALID") ?? 0;

    /// <summary>The number of the job's processes on this machine (1 without a launcher).</summary>
    public static int LocalSize => FirstInt("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PMI_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE") ?? (IsMultiProcess ? WorldSize : 1);

    /// <summary>Intra-op threads for one process: <paramref name="threads"/> when given, else the machine's cores shared by its processes.</summary>
    public static int ThreadsPerProcess(int threads) => threads > 0 ? threads : Math.Max(1, Environment.ProcessorCount / Math.Max(1, LocalSize));

    /// <summary>Whether MPI launched this process together with others (one process alone runs as without MPI).</summary>
    public static bool IsMultiProcess =>
        (Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") ?? Environment.GetEnvironmentVariable("PMI_SIZE")
            ?? Environment.GetEnvironmentVariable("PMIX_RANK")) is not null && WorldSize > 1;

    /// <summary>An MPI communicator when <see cref="IsMultiProcess"/>, else null (the single-process run, with no MPI library).</summary>
    public static ICommunicator? CommunicatorOrNull() => IsMultiProcess ? MpiCommunicator.Initialize(LocalRank) : null;

    private static int? FirstInt(params string[] names)
    {
        foreach (var n in names)
            if (int.TryParse(Environment.GetEnvironmentVariable(n), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v)) return v;
        return null;
    }
}

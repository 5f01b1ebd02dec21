using Ddpm.Distributed;

namespace Ddpm.Cli;

/// <summary>
/// The process's MPI communicator when a launcher started it with others (null otherwise), opened by the first
/// command that needs it and closed by <see cref="CliApp.Run"/> after the command's outcome is printed: MPI_Finalize
/// when it succeeded, MPI_Abort when it failed, so that a process that stops on an error ends the whole job instead of
/// leaving the others waiting in a collective operation (and its message is printed before, not lost).
/// </summary>
internal static class MpiSession
{
    private static ICommunicator? _communicator;
    private static bool _opened;

    /// <summary>The job's communicator, or null for a process alone.</summary>
    public static ICommunicator? Communicator
    {
        get
        {
            if (!_opened)
            {
                _communicator = MpiEnvironment.CommunicatorOrNull();
                _opened = true;
            }
            return _communicator;
        }
    }

    /// <summary>Tests: run the next commands as a process of the job <paramref name="communicator"/> stands for (in process).</summary>
    internal static IDisposable Use(ICommunicator communicator)
    {
        _communicator = communicator;
        _opened = true;
        return new Reset();
    }

    private sealed class Reset : IDisposable
    {
        public void Dispose()
        {
            _communicator = null;
            _opened = false;
        }
    }

    /// <summary>"rank R of N: " in a multi-process job, for error messages; empty otherwise.</summary>
    public static string RankPrefix => _communicator is { } c ? $"rank {c.Rank} of {c.Size}: " : "";

    /// <summary>Closes MPI: finalize after success, abort the job after a failure.</summary>
    public static void End(bool failed)
    {
        var c = _communicator;
        if (c is null || c is not MpiCommunicator) return; // none, or one a test gave (Use): it stays until disposed
        _communicator = null;
        _opened = false;
        if (failed && c is MpiCommunicator mpi) mpi.Abort(1);
        if (c is MpiCommunicator) c.Dispose(); // a communicator given by Use stays its owner's
    }
}

using System.CommandLine;
using Ddpm.Distributed;

namespace Ddpm.Cli.Commands;

/// <summary>--shard INDEX/COUNT: one task of a cluster array job (see <see cref="Shard"/>).</summary>
public static class ShardOption
{
    public static Option<string?> Create(string description) => new("--shard") { Description = description, HelpName = "INDEX/COUNT" };

    /// <summary>
    /// The shard of this process: the one --shard gives (an array task, no MPI), or under mpirun or srun the shard of its
    /// rank, with the job's communicator (null otherwise). --shard under MPI is refused: the ranks would all do the same shard.
    /// </summary>
    public static (Shard? Shard, ICommunicator? Communicator) ParseOrFromMpi(ParseResult parse, Option<string?> option)
    {
        var given = Parse(parse, option);
        if (MpiSession.Communicator is not ICommunicator comm) return (given, null);
        if (given is not null) throw new DdpmException($"--shard {given} under mpirun: each process already takes the shard of its rank; run without --shard");
        return (new Shard(comm.Rank, comm.Size), comm);
    }

    /// <summary>The shard given, or null when the option is absent; a malformed value is a one-line error naming --shard.</summary>
    public static Shard? Parse(ParseResult parse, Option<string?> option) =>
        parse.GetValue(option) is string text ? Shard.Parse(text) : null;
}

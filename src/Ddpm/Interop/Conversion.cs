using Ddpm.IO;
using Ddpm.Runs;
using TorchSharp;

namespace Ddpm.Interop;

/// <summary>
/// Conversions between this project's checkpoints and other projects' formats: any <see cref="PretrainedModel"/> to a
/// run folder that sampling, fine-tuning (<c>init_from</c>) and resuming read, and a run's checkpoint to a diffusers
/// DDPMPipeline folder.
/// </summary>
public static class Conversion
{
    /// <summary>
    /// Writes <paramref name="model"/> as a run folder: config.json (the model's network and diffusion settings, today's
    /// defaults for the rest, no data) and one checkpoint at step 0 whose raw and EMA weights are both the model's and
    /// whose optimizer state is a fresh Adam's, so that resuming it (with training data given) fine-tunes exactly as a
    /// new run started from these weights would. <paramref name="runDir"/> must not hold a run. With
    /// <paramref name="referenceFile"/> the network's output on a fixed input is written too (<see cref="ReferenceOutput"/>).
    /// Returns the checkpoint folder.
    /// </summary>
    public static string ToRun(PretrainedModel model, string runDir, string? referenceFile = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrWhiteSpace(runDir);
        if (CheckpointStore.HasCompleteCheckpoint(runDir)) throw new DdpmException($"{runDir} already holds a run; choose another folder");
        var config = model.ToConfig();
        config.Data = "";
        using var net = model.CreateNetwork();
        using var optimizer = torch.optim.Adam(net.parameters(), config.LearningRate, config.AdamBeta1, config.AdamBeta2, config.AdamEps);
        RunFolder.Create(runDir);
        // A crash after config.json and before the checkpoint leaves a folder without a run: converting again, or
        // starting a run there, proceeds over it (see Trainer.Start).
        AtomicFile.WriteAllText(Path.Combine(runDir, RunFolder.ConfigFile), config.ToJson());
        var state = new CheckpointState { Step = 0, Seed = config.Seed, Config = config };
        var checkpoint = CheckpointStore.Save(runDir, state, net, net, optimizer);
        if (referenceFile is not null) ReferenceOutput.Write(net, model.Diffusion.Timesteps, referenceFile);
        return checkpoint;
    }

    /// <summary>
    /// Writes <paramref name="model"/> as a diffusers DDPMPipeline folder (see <see cref="DiffusersFolder.Write"/>), and
    /// with <paramref name="referenceFile"/> the network's output on a fixed input (<see cref="ReferenceOutput"/>).
    /// </summary>
    public static void ToDiffusers(PretrainedModel model, string dir, string? referenceFile = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var net = model.CreateNetwork();
        DiffusersFolder.Write(dir, model.Model, model.Diffusion, net);
        if (referenceFile is not null) ReferenceOutput.Write(net, model.Diffusion.Timesteps, referenceFile);
    }
}

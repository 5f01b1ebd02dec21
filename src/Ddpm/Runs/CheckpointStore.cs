using System.Globalization;
using System.Text.Json;
using Ddpm.IO;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.Runs;

/// <summary>What a checkpoint's state.json holds besides the tensors.</summary>
public sealed class CheckpointState
{
    public string Format { get; set; } = CheckpointStore.FormatName;
    /// <summary>Number of optimizer updates done: training continues at this 0-based step.</summary>
    public long Step { get; set; }
    public long Seed { get; set; }
    /// <summary>How the step's randomness is derived; stored so a reader knows what resuming needs.</summary>
    public string Rng { get; set; } = "per-step generators seeded with StepRandom.SeedFor(seed, step, stream); batch order from BatchSampler(seed)";
    public string SavedAt { get; set; } = "";
    public TrainConfig Config { get; set; } = new();
    /// <summary>The importance sampler's loss history (null with uniform t), so a resumed run draws the same t.</summary>
    public TimestepSamplerState? TimestepSampler { get; set; }
}

/// <summary>
/// Checkpoints of a run folder. Each is a folder <c>checkpoints/step_NNNNNNN</c> holding
/// <c>model.safetensors</c>, <c>ema.safetensors</c> (PyTorch state-dict names), <c>optimizer.safetensors</c>
/// (PyTorch's optimizer names: <c>state.{i}.exp_avg</c>, <c>state.{i}.exp_avg_sq</c>, <c>state.{i}.step</c>) and
/// <c>state.json</c>. A checkpoint is written into a hidden temporary folder, flushed, and renamed into place;
/// then the <c>checkpoints/latest</c> pointer is replaced atomically. A crash at any point leaves the previous
/// checkpoint intact and pointed to.
/// </summary>
/// <summary>Why <c>checkpoints/best</c> is the best: the metric (lower is better), its value and the step.</summary>
public sealed record BestCheckpoint(string Metric, double Value, long Step);

public static class CheckpointStore
{
    public const string FormatName = "ddpm-dotnet-checkpoint/1";
    public const string Folder = "checkpoints";
    public const string LatestFile = "latest";
    public const string ModelFile = "model.safetensors";
    public const string EmaFile = "ema.safetensors";
    public const string OptimizerFile = "optimizer.safetensors";
    public const string StateFile = "state.json";

    public static string NameFor(long step) => "step_" + step.ToString("D7", CultureInfo.InvariantCulture);

    /// <summary>
    /// Writes a checkpoint atomically and returns its folder. Keeps the newest <paramref name="keep"/>. Every window
    /// between two file operations leaves a complete checkpoint that <see cref="Resolve"/> finds (tested by fault
    /// injection at each <see cref="FaultInjection"/> point).
    /// </summary>
    public static string Save(string runDir, CheckpointState state, nn.Module model, nn.Module ema, Adam optimizer, int keep = 2)
    {
        var root = Path.Combine(runDir, Folder);
        Directory.CreateDirectory(root);
        Recover(root);
        var name = NameFor(state.Step);
        var final = Path.Combine(root, name);
        var tmp = Path.Combine(root, $".tmp-{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(tmp);
        try
        {
            model.save_safetensors(Path.Combine(tmp, ModelFile));
            FaultInjection.At("checkpoint: model written");
            ema.save_safetensors(Path.Combine(tmp, EmaFile));
            SaveOptimizer(optimizer, Path.Combine(tmp, OptimizerFile));
            FaultInjection.At("checkpoint: optimizer written");
            state.SavedAt = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture);
            File.WriteAllText(Path.Combine(tmp, StateFile), JsonSerializer.Serialize(state, TrainConfig.Json));
            foreach (var f in Directory.GetFiles(tmp)) AtomicFile.FlushToDisk(f);
            FaultInjection.At("checkpoint: temporary folder complete");

            // Same step saved again (e.g. interrupted right after a periodic save): the old folder is swapped out.
            MoveIntoPlace(tmp, final);
        }
        catch (Exception e) when (!FaultInjection.IsCrash(e))
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
            throw;
        }
        AtomicFile.WriteAllText(Path.Combine(root, LatestFile), name + "\n");
        FaultInjection.At("checkpoint: latest written");
        Prune(root, keep, name);
        return final;
    }

    /// <summary>Folder (inside <see cref="Folder"/>) holding a copy of the best checkpoint by the evaluation metric.</summary>
    public const string BestFolder = "best";
    public const string BestFile = "best.json";

    /// <summary>
    /// Copies <paramref name="checkpointDir"/> to <c>checkpoints/best</c> with a <c>best.json</c> saying why, atomically: the
    /// previous best stays whole until the new one is complete. Pruning never touches it.
    /// </summary>
    public static string SaveBest(string runDir, string checkpointDir, BestCheckpoint record)
    {
        var root = Path.Combine(runDir, Folder);
        Recover(root);
        var final = Path.Combine(root, BestFolder);
        var tmp = Path.Combine(root, $".tmp-best-{Guid.NewGuid():N}");
        Directory.CreateDirectory(tmp);
        try
        {
            foreach (var f in Directory.GetFiles(checkpointDir))
                File.Copy(f, Path.Combine(tmp, Path.GetFileName(f)));
            File.WriteAllText(Path.Combine(tmp, BestFile), JsonSerializer.Serialize(record, TrainConfig.Json));
            foreach (var f in Directory.GetFiles(tmp)) AtomicFile.FlushToDisk(f);
            MoveIntoPlace(tmp, final);
        }
        catch (Exception e) when (!FaultInjection.IsCrash(e))
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
            throw;
        }
        return final;
    }

    /// <summary>The record of the best checkpoint of a run, or null when there is none yet.</summary>
    public static BestCheckpoint? ReadBest(string runDir)
    {
        var file = Path.Combine(runDir, Folder, BestFolder, BestFile);
        // A crash in the middle of replacing the best copy leaves the previous one aside: it is still the best.
        if (!File.Exists(file) && Directory.Exists(Path.Combine(runDir, Folder)) && BestAside(Path.Combine(runDir, Folder)) is string aside)
            file = Path.Combine(aside, BestFile);
        if (!File.Exists(file)) return null;
        try
        {
            return JsonSerializer.Deserialize<BestCheckpoint>(File.ReadAllText(file), TrainConfig.Json);
        }
        catch (JsonException e)
        {
            throw new DdpmException($"{file}: corrupt best-checkpoint record: {e.Message}", e);
        }
    }

    /// <summary>
    /// Renames the complete folder <paramref name="tmp"/> to <paramref name="final"/>. An existing <paramref name="final"/>
    /// is first renamed aside (".old-NAME-*") and deleted after. A crash between the two renames leaves the complete
    /// copy aside: <see cref="Resolve"/> reads it there and the next save (<see cref="Recover"/>) puts it back.
    /// </summary>
    private static void MoveIntoPlace(string tmp, string final)
    {
        if (!Directory.Exists(final))
        {
            Directory.Move(tmp, final);
            FaultInjection.At("checkpoint: renamed into place");
            return;
        }
        var old = Path.Combine(Path.GetDirectoryName(final)!, $"{OldPrefix}{Path.GetFileName(final)}-{Guid.NewGuid():N}");
        Directory.Move(final, old);
        FaultInjection.At("checkpoint: previous copy renamed aside");
        Directory.Move(tmp, final);
        FaultInjection.At("checkpoint: renamed into place over a previous copy");
        Directory.Delete(old, recursive: true);
    }

    private const string OldPrefix = ".old-";

    /// <summary>
    /// The complete checkpoint copies interrupted swaps left aside (".old-step_N-*" holding a state.json), with the
    /// checkpoint name each belongs to, ordered by that name (step order) and then by folder.
    /// </summary>
    private static List<(string Name, string Dir)> CheckpointAsides(string root) =>
        Directory.GetDirectories(root, OldPrefix + "step_*")
            .Select(d => (Name: CheckpointNameOfAside(d)!, Dir: d))
            .Where(a => a.Name is not null && File.Exists(Path.Combine(a.Dir, StateFile)))
            .OrderBy(a => a.Name, StringComparer.Ordinal).ThenBy(a => a.Dir, StringComparer.Ordinal)
            .ToList();

    /// <summary>The complete best copy an interrupted swap left aside, or null.</summary>
    private static string? BestAside(string root) =>
        Directory.GetDirectories(root, $"{OldPrefix}{BestFolder}-*")
            .Where(d => File.Exists(Path.Combine(d, BestFile)))
            .OrderBy(d => d, StringComparer.Ordinal)
            .FirstOrDefault();

    /// <summary>Puts back every complete copy an interrupted swap left aside whose name (a checkpoint's, or best) is free.</summary>
    private static void Recover(string root)
    {
        if (!Directory.Exists(Path.Combine(root, BestFolder)) && BestAside(root) is string best)
            Directory.Move(best, Path.Combine(root, BestFolder));
        foreach (var (name, dir) in CheckpointAsides(root))
            if (!Directory.Exists(Path.Combine(root, name))) Directory.Move(dir, Path.Combine(root, name));
    }

    private static string? CheckpointNameOfAside(string aside)
    {
        var file = Path.GetFileName(aside);
        int dash = file.LastIndexOf('-');
        if (!file.StartsWith(OldPrefix, StringComparison.Ordinal) || dash <= OldPrefix.Length) return null;
        var name = file[OldPrefix.Length..dash];
        return IsCheckpointName(name) ? name : null;
    }

    /// <summary>Whether <paramref name="name"/> is the name of a checkpoint folder (step_ and digits): a pointer may name nothing else.</summary>
    public static bool IsCheckpointName(string name) =>
        name.Length > 5 && name.StartsWith("step_", StringComparison.Ordinal) && name.AsSpan(5).IndexOfAnyExceptInRange('0', '9') < 0;

    private static void Prune(string root, int keep, string latest)
    {
        var complete = ListComplete(root);
        foreach (var dir in complete.Take(Math.Max(0, complete.Count - keep)))
        {
            if (Path.GetFileName(dir) == latest) continue;
            Directory.Delete(dir, recursive: true);
        }
        string? newest = ListComplete(root).Select(d => Path.GetFileName(d)).LastOrDefault();
        foreach (var stale in Directory.GetDirectories(root, ".tmp-*").Concat(Directory.GetDirectories(root, OldPrefix + "*")))
        {
            // A copy set aside stays until its checkpoint is back in place (Recover) or a newer one is complete
            // (names are zero-padded: ordinal order is step order).
            if (CheckpointNameOfAside(stale) is string name && !File.Exists(Path.Combine(root, name, StateFile)) &&
                (newest is null || string.CompareOrdinal(newest, name) < 0)) continue;
            if (Path.GetFileName(stale).StartsWith(OldPrefix + BestFolder + "-", StringComparison.Ordinal) &&
                !File.Exists(Path.Combine(root, BestFolder, BestFile))) continue;
            try { Directory.Delete(stale, recursive: true); } catch (IOException) { }
        }
        foreach (var tmpFile in Directory.GetFiles(root, ".*.tmp"))
        {
            try { File.Delete(tmpFile); } catch (IOException) { }
        }
    }

    /// <summary>Whether the run folder holds a complete checkpoint (or a complete copy an interrupted save set aside).</summary>
    public static bool HasCompleteCheckpoint(string runDir)
    {
        var root = Path.Combine(runDir, Folder);
        if (!Directory.Exists(root)) return false;
        return ListComplete(root).Count > 0 || CheckpointAsides(root).Count > 0;
    }

    /// <summary>The run's complete checkpoint folders (step_N, not best), oldest first; empty when it has none.</summary>
    public static IReadOnlyList<string> List(string runDir)
    {
        var root = Path.Combine(runDir, Folder);
        return Directory.Exists(root) ? ListComplete(root) : [];
    }

    /// <summary>Complete checkpoint folders, oldest first.</summary>
    private static List<string> ListComplete(string root) =>
        Directory.GetDirectories(root, "step_*")
            .Where(d => IsCheckpointName(Path.GetFileName(d)) && File.Exists(Path.Combine(d, StateFile)))
            .OrderBy(d => Path.GetFileName(d), StringComparer.Ordinal)
            .ToList();

    /// <summary>
    /// Finds the checkpoint folder for a run folder (its latest checkpoint), a checkpoint folder, or a
    /// weights file inside one. Throws a one-line error when there is none.
    /// </summary>
    public static string Resolve(string path)
    {
        if (File.Exists(path))
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
            if (File.Exists(Path.Combine(dir, StateFile))) return dir;
            throw new DdpmException($"{path}: not inside a checkpoint folder (no {StateFile} beside it)");
        }
        if (!Directory.Exists(path)) throw new DdpmException($"checkpoint not found: {path}");
        if (File.Exists(Path.Combine(path, StateFile))) return Path.GetFullPath(path);
        var root = Path.Combine(path, Folder);
        if (!Directory.Exists(root)) throw new DdpmException($"{path}: neither a run folder (no {Folder}/) nor a checkpoint folder (no {StateFile})");
        // The pointer may name only a checkpoint of this run (step_N inside checkpoints/): anything else, such as a
        // path into another run, is ignored and the newest complete checkpoint is used.
        var pointer = Path.Combine(root, LatestFile);
        if (File.Exists(pointer))
        {
            var name = File.ReadAllText(pointer).Trim();
            if (IsCheckpointName(name))
            {
                var dir = Path.Combine(root, name);
                if (File.Exists(Path.Combine(dir, StateFile))) return Path.GetFullPath(dir);
                if (!Directory.Exists(dir) && CheckpointAsides(root).FirstOrDefault(a => a.Name == name).Dir is string aside)
                    return Path.GetFullPath(aside);
            }
        }
        var complete = ListComplete(root);
        if (complete.Count == 0)
        {
            var asides = CheckpointAsides(root);
            if (asides.Count > 0) return Path.GetFullPath(asides[^1].Dir);
            throw new DdpmException($"{path}: the run folder holds no complete checkpoint");
        }
        return Path.GetFullPath(complete[^1]);
    }

    public static CheckpointState ReadState(string checkpointDir)
    {
        var file = Path.Combine(checkpointDir, StateFile);
        if (!File.Exists(file)) throw new DdpmException($"{checkpointDir}: missing {StateFile}");
        try
        {
            var state = JsonSerializer.Deserialize<CheckpointState>(File.ReadAllText(file), TrainConfig.Json)
                ?? throw new DdpmException($"{file}: empty");
            if (state.Format != FormatName) throw new DdpmException($"{file}: unknown checkpoint format '{state.Format}' (expected {FormatName})");
            if (state.Config is null) throw new DdpmException($"{file}: the checkpoint state holds no configuration");
            if (state.Step < 0) throw new DdpmException($"{file}: step {state.Step}: must not be negative");
            // Sampling from a checkpoint needs no data (a converted checkpoint names none); training checks it.
            state.Config.Validate(requireData: false);
            return state;
        }
        catch (JsonException e)
        {
            throw new DdpmException($"{file}: corrupt checkpoint state: {e.Message}", e);
        }
        catch (DdpmException e) when (e.Setting is not null)
        {
            // A value stored in the file, not one the user gave: name the file and the setting key, never an option.
            throw new DdpmException($"{file}: {e.Message}", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DdpmException($"{file}: cannot read: {AtomicFile.OneLine(e.Message)}", e);
        }
    }

    /// <summary>
    /// Loads a safetensors state dict into a module (strict: every key, shape and dtype must match; the file's header is
    /// compared with the module first, so a mismatch names the tensors and changes nothing).
    /// </summary>
    public static void LoadWeights(nn.Module module, string file)
    {
        if (!File.Exists(file)) throw new DdpmException($"weights file not found: {file}");
        WeightsFit.Check(module, file);
        try
        {
            module.load_safetensors(file, strict: true);
        }
        catch (Exception e) when (e is not DdpmException)
        {
            throw new DdpmException($"{file}: cannot load weights ({FirstLine(e.Message)})", e);
        }
    }

    private static string FirstLine(string s)
    {
        var i = s.IndexOf('\n');
        return i < 0 ? s : s[..i];
    }

    public static void SaveOptimizer(Adam optimizer, string file)
    {
        var dict = new Dictionary<string, Tensor>();
        var sd = optimizer.state_dict();
        for (int i = 0; i < sd.State.Count; i++)
        {
            var s = (Adam.State)sd.State[i];
            dict[$"state.{i}.step"] = tensor((float)s.step);
            if (s.exp_avg is not null) dict[$"state.{i}.exp_avg"] = s.exp_avg.cpu();
            if (s.exp_avg_sq is not null) dict[$"state.{i}.exp_avg_sq"] = s.exp_avg_sq.cpu();
        }
        Safetensors.SaveStateDict(file, dict);
        foreach (var (k, v) in dict)
            if (k.EndsWith(".step", StringComparison.Ordinal)) v.Dispose();
    }

    public static void LoadOptimizer(Adam optimizer, string file)
    {
        if (!File.Exists(file)) throw new DdpmException($"optimizer state not found: {file}");
        Dictionary<string, Tensor> dict;
        try
        {
            dict = Safetensors.LoadStateDict(file);
        }
        catch (Exception e)
        {
            throw new DdpmException($"{file}: cannot read optimizer state ({FirstLine(e.Message)})", e);
        }
        var sd = optimizer.state_dict();
        // Check the whole file against the model before changing any state.
        if (dict.Keys.Count(k => k.EndsWith(".step", StringComparison.Ordinal)) != sd.State.Count)
            throw new DdpmException($"{file}: optimizer state has a different number of parameters than the model");
        using var _ = no_grad();
        for (int i = 0; i < sd.State.Count; i++)
        {
            var s = (Adam.State)sd.State[i];
            if (!dict.TryGetValue($"state.{i}.step", out var step) ||
                !dict.TryGetValue($"state.{i}.exp_avg", out var m) ||
                !dict.TryGetValue($"state.{i}.exp_avg_sq", out var v))
                throw new DdpmException($"{file}: optimizer state for parameter {i} is missing");
            if (!m.shape.SequenceEqual(s.exp_avg.shape))
                throw new DdpmException($"{file}: optimizer state {i} has shape [{string.Join(",", m.shape)}], the model needs [{string.Join(",", s.exp_avg.shape)}]");
            s.step = (long)Math.Round(step.item<float>());
            s.exp_avg.copy_(m);
            s.exp_avg_sq.copy_(v);
        }
        optimizer.load_state_dict(sd);
        foreach (var t in dict.Values) t.Dispose();
    }
}

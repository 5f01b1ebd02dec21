using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ddpm.Training;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.Bench;

/// <summary>
/// The PyTorch peer (bench/pytorch_peer.py): the same network, weights, data, loss, optimiser, clipping and EMA run
/// by PyTorch on the same machine in the same job, so that the benchmark prints a C#/PyTorch ratio. The peer loads
/// this project's checkpoint by its state-dict names and first checks that its forward pass equals ours.
/// </summary>
public sealed class PeerBenchmark : IDisposable
{
    private readonly string _dir;
    private readonly string _python;
    private readonly string _script;

    private PeerBenchmark(string python, string script)
    {
        _python = python;
        _script = script;
        _dir = Path.Combine(Path.GetTempPath(), $"ddpm-bench-peer-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_dir);
    }

    /// <summary>The peer, or null with the reason when it cannot run here (no Python with torch, or turned off).</summary>
    public static (PeerBenchmark? Peer, string Why) Find(string pythonOption, string repoRoot)
    {
        if (pythonOption == "off") return (null, "turned off (--peer off)");
        var script = Path.Combine(repoRoot, "bench", "pytorch_peer.py");
        if (!File.Exists(script)) return (null, $"{script} not found");
        var candidates = pythonOption == "auto" ? new[] { "/usr/bin/python3", "python3" } : new[] { pythonOption };
        foreach (var python in candidates)
        {
            var (code, output) = RunProcess(python, ["-c", "import torch, numpy; print(torch.__version__)"], TimeSpan.FromSeconds(60));
            if (code == 0) return (new PeerBenchmark(python, script), output.Trim());
        }
        return (null, $"no Python with torch and numpy among {string.Join(", ", candidates)} (Debian: apt-get install python3-torch)");
    }

    /// <summary>
    /// Writes the trainer's current weights as a checkpoint file and the U-Net's output on a fixed input, for the peer
    /// to load and compare; the peer trains from these weights.
    /// </summary>
    public void Capture(Trainer trainer)
    {
        trainer.Model.save_safetensors(Path.Combine(_dir, "model.safetensors"));
        using var scope = NewDisposeScope();
        var c = trainer.Config.Model!;
        // x.flatten()[k] = sin(0.37 k), timesteps spread over [0, T): the input the repository's U-Net fixtures use.
        var x = sin(arange(4L * c.InChannels * c.ImageSize * c.ImageSize, dtype: ScalarType.Float64) * 0.37)
            .to(ScalarType.Float32).reshape(4, c.InChannels, c.ImageSize, c.ImageSize);
        int steps = trainer.Diffusion.Timesteps;
        var t = tensor(new long[] { 0, steps / 4, steps / 2, steps - 1 });
        trainer.Model.eval();
        Tensor output;
        using (no_grad()) output = trainer.Model.call(x.to(trainer.Device), t.to(trainer.Device)).cpu();
        trainer.Model.train();
        Safetensors.SaveStateDict(Path.Combine(_dir, "check.safetensors"), new Dictionary<string, Tensor> { ["x"] = x, ["t"] = t, ["out"] = output });
    }

    /// <summary>Runs the peer's training loop on the same work and returns its figures (JSON), or throws with its error.</summary>
    public JsonObject Train(Trainer trainer, BenchOptions o, string dataPath, int maxImages, int threads)
    {
        var cfg = trainer.Config;
        var c = cfg.Model!;
        var request = new JsonObject
        {
            ["weights"] = Path.Combine(_dir, "model.safetensors"),
            ["check"] = Path.Combine(_dir, "check.safetensors"),
            ["data"] = dataPath,
            ["max_images"] = maxImages,
            ["device"] = o.Device == "auto" ? trainer.Device.ToString() : o.Device,
            ["threads"] = threads,
            ["seed"] = cfg.Seed,
            ["batch_size"] = o.BatchSize,
            ["steps"] = o.ThroughputSteps,
            ["warmup_steps"] = 3,
            ["lr"] = cfg.LearningRate,
            ["adam_eps"] = cfg.AdamEps,
            ["grad_clip"] = cfg.GradClip > 0 ? cfg.GradClip : double.MaxValue,
            ["ema_decay"] = cfg.EmaDecay,
            ["read_every"] = Benchmarks.ReadBackEvery,
            ["tf32"] = o.Tf32 switch { "on" => true, "off" => false, _ => null },
            ["no_ema"] = o.PeerNoEma,
            ["alpha_bar"] = new JsonArray(trainer.Diffusion.Schedule.AlphasCumprod.Select(a => (JsonNode)a).ToArray()),
            ["unet"] = new JsonObject
            {
                ["in_channels"] = c.InChannels, ["out_channels"] = c.EffectiveOutChannels, ["image_size"] = c.ImageSize,
                ["base_channels"] = c.BaseChannels, ["channel_mult"] = new JsonArray(c.ChannelMult.Select(m => (JsonNode)m).ToArray()),
                ["num_res_blocks"] = c.NumResBlocks,
                ["attention_resolutions"] = new JsonArray(c.AttentionResolutions.Select(r => (JsonNode)r).ToArray()),
                ["dropout"] = c.Dropout, ["norm_groups"] = c.NormGroups, ["resample_with_conv"] = c.ResampleWithConv,
            },
        };
        var requestPath = Path.Combine(_dir, "request.json");
        File.WriteAllText(requestPath, request.ToJsonString());
        var (code, output) = RunProcess(_python, [_script, requestPath], TimeSpan.FromMinutes(30));
        var last = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? "";
        if (code != 0 || !last.StartsWith('{'))
            throw new DdpmException($"the PyTorch peer failed (exit {code}): {last}");
        return JsonNode.Parse(last)!.AsObject();
    }

    private static (int Code, string Output) RunProcess(string file, string[] args, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // The peer allocates as this process does: glibc's thresholds set (NativeAllocator) or glibc's defaults.
        foreach (var (name, value) in Ddpm.Runtime.NativeAllocator.EnvironmentForChild()) psi.Environment[name] = value;
        foreach (var a in args) psi.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(timeout))
            {
                p.Kill(entireProcessTree: true);
                return (-1, "timed out");
            }
            return (p.ExitCode, stdout.Result + stderr.Result);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, e.Message);
        }
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    public static string Describe(JsonObject r, double csharpImagesPerSecond)
    {
        var inv = CultureInfo.InvariantCulture;
        var line = string.Format(inv,
            "PyTorch peer (torch {0}, {1} threads, {2}, loss read every {8} steps): {3:F1} images/s; C#/PyTorch {4:F2}x; same network: {5} tensors loaded by name, forward max |diff| {6:E1} (outputs up to {7:F3})",
            (string?)r["torch"], (int?)r["threads"], (string?)r["device"], (double?)r["train_images_per_s"],
            csharpImagesPerSecond / (double)r["train_images_per_s"]!, (int?)r["tensors_loaded"],
            (double?)r["forward_max_abs_diff"], (double?)r["forward_max_abs"], (int?)r["read_every"]);
        if (r["train_images_per_s_no_ema"] is JsonNode noEma)
            line += string.Format(inv, "; without its EMA {0:F1} images/s (C#/PyTorch-no-EMA {1:F2}x)", (double)noEma, csharpImagesPerSecond / (double)noEma);
        if (r["max_memory_allocated_mib"] is JsonNode mem)
            line += string.Format(inv, "; its peak GPU memory {0:F0} MiB", (double)mem);
        return line;
    }
}

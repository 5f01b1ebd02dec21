using System.CommandLine;
using Ddpm.Models;

namespace Ddpm.Bench;

/// <summary>What the benchmark measures and where; each property is one command-line option (see <see cref="BenchCommand"/>).</summary>
public sealed class BenchOptions
{
    // The benchmark figures of issue 9 (README) are mnist-small's, the default network until issue 12: kept so that they
    // stay comparable; --preset mnist-tiny measures today's default.
    public string Preset { get; set; } = "mnist-small";
    public string Device { get; set; } = "cpu";
    public int BatchSize { get; set; } = 64;
    public int ThroughputSteps { get; set; } = 20;
    public int SoakSteps { get; set; } = 1000;
    public int SoakBatch { get; set; } = 4;
    public int SampleSteps { get; set; } = 20;
    public int Threads { get; set; }
    /// <summary>Measure only the offline classifier's feature extraction.</summary>
    public bool ClassifierOnly { get; set; }
    /// <summary>Also measure FID Inception feature extraction (--inception), or only that (--inception-only).</summary>
    public bool Inception { get; set; }
    public bool InceptionOnly { get; set; }
    public int InceptionBatch { get; set; } = 50;
    public int InceptionBatches { get; set; } = 2;
    /// <summary>The Python that runs bench/pytorch_peer.py: "auto" (the first python3 that imports torch), "off", or a path.</summary>
    public string Peer { get; set; } = "auto";
    /// <summary>TF32 for CUDA matmuls and convolutions, on both sides: "default" (libtorch's settings), "on" or "off".</summary>
    public string Tf32 { get; set; } = "default";
    /// <summary>Also time the peer's loop without its EMA.</summary>
    public bool PeerNoEma { get; set; } = true;
    /// <summary>A second SafeConv policy (output channels from which libtorch's own input gradient is trusted) timed beside the default; 0: none.</summary>
    public int SafeConvCompare { get; set; }
    /// <summary>Run only the stress check of libtorch's convolution backward (<see cref="ConvCheck"/>) with this many calls per shape; 0: skip it.</summary>
    public int ConvCheck { get; set; }
    /// <summary>Rounds of C# and the peer timed alternately after the first comparison (1: none).</summary>
    public int PeerRounds { get; set; } = 1;
}

/// <summary>The benchmark's command line: options, help, and one-line errors for bad input.</summary>
public static class BenchCommand
{
    private static Option<T> Opt<T>(string name, string description, T defaultValue) =>
        new(name) { Description = description, DefaultValueFactory = _ => defaultValue };

    /// <summary>Parses <paramref name="args"/>; prints help or a one-line error and returns null when there is nothing to run.</summary>
    public static (BenchOptions? Options, int ExitCode) Parse(string[] args, TextWriter output, TextWriter err)
    {
        var d = new BenchOptions();
        var preset = Opt("--preset", "U-Net preset to train and sample", d.Preset);
        var device = Opt("--device", "cpu, cuda, cuda:N or auto", d.Device);
        var batch = Opt("--batch-size", "training batch", d.BatchSize);
        var steps = Opt("--steps", "timed training steps (after 3 warm-up steps)", d.ThroughputSteps);
        var soakSteps = Opt("--soak-steps", "steps of the memory soak (0: skip it)", d.SoakSteps);
        var soakBatch = Opt("--soak-batch", "batch of the memory soak", d.SoakBatch);
        var sampleSteps = Opt("--sample-steps", "timed denoising steps per sampler", d.SampleSteps);
        var threads = Opt("--threads", "libtorch intra-op threads (0: all cores)", d.Threads);
        var classifierOnly = Opt("--classifier-only", "measure only the offline classifier's feature extraction", false);
        var inception = Opt("--inception", "also measure FID Inception feature extraction", false);
        var inceptionOnly = Opt("--inception-only", "measure only FID Inception feature extraction", false);
        var inceptionBatch = Opt("--inception-batch", "Inception batch", d.InceptionBatch);
        var inceptionBatches = Opt("--inception-batches", "timed Inception batches", d.InceptionBatches);
        var peer = Opt("--peer", "Python for the PyTorch peer (bench/pytorch_peer.py): auto, off, or a path", d.Peer);
        var tf32 = Opt("--tf32", "TF32 for CUDA matmuls and convolutions on both sides: default, on or off", d.Tf32);
        var peerNoEma = Opt("--peer-no-ema", "also time the peer's loop without its EMA", d.PeerNoEma);
        var peerRounds = Opt("--peer-rounds", "time C# and the PyTorch peer in this many alternating rounds after the first comparison (1: only that one)", d.PeerRounds);
        var convCheck = Opt("--conv-check", "run only the stress check of libtorch's CPU convolution input gradients for the preset's shapes SafeConv trusts, this many calls per shape, size and batch (0: skip)", d.ConvCheck);
        var safeConvCompare = Opt("--safeconv-compare", "also time SafeConv trusting libtorch's input gradient from this many output channels (CPU; 0: only the default and the full workaround)", d.SafeConvCompare);
        var root = new RootCommand("ddpm benchmark: training and sampling throughput against the same-run matmul rate and the PyTorch peer")
        {
            preset, device, batch, steps, soakSteps, soakBatch, sampleSteps, threads, classifierOnly, inception,
            inceptionOnly, inceptionBatch, inceptionBatches, peer, tf32, peerNoEma, safeConvCompare, convCheck, peerRounds,
        };
        var parsed = root.Parse(args);
        if (parsed.Action is System.CommandLine.Help.HelpAction)
        {
            parsed.Invoke(new InvocationConfiguration { Output = output, Error = err });
            return (null, 0);
        }
        if (parsed.Errors.Count > 0)
        {
            err.WriteLine($"error: {parsed.Errors[0].Message} (see --help)");
            return (null, 2);
        }
        var o = new BenchOptions
        {
            Preset = parsed.GetValue(preset)!, Device = parsed.GetValue(device)!, BatchSize = parsed.GetValue(batch),
            ThroughputSteps = parsed.GetValue(steps), SoakSteps = parsed.GetValue(soakSteps), SoakBatch = parsed.GetValue(soakBatch),
            SampleSteps = parsed.GetValue(sampleSteps), Threads = parsed.GetValue(threads),
            ClassifierOnly = parsed.GetValue(classifierOnly), Inception = parsed.GetValue(inception) || parsed.GetValue(inceptionOnly),
            InceptionOnly = parsed.GetValue(inceptionOnly), InceptionBatch = parsed.GetValue(inceptionBatch),
            InceptionBatches = parsed.GetValue(inceptionBatches), Peer = parsed.GetValue(peer)!,
            Tf32 = parsed.GetValue(tf32)!, PeerNoEma = parsed.GetValue(peerNoEma), SafeConvCompare = parsed.GetValue(safeConvCompare),
            ConvCheck = parsed.GetValue(convCheck), PeerRounds = parsed.GetValue(peerRounds),
        };
        string? problem = Check(o);
        if (problem is not null)
        {
            err.WriteLine($"error: {problem} (see --help)");
            return (null, 2);
        }
        return (o, 0);
    }

    private static string? Check(BenchOptions o)
    {
        if (o.BatchSize < 1) return $"--batch-size {o.BatchSize}: must be at least 1";
        if (o.ThroughputSteps < 1) return $"--steps {o.ThroughputSteps}: must be at least 1";
        if (o.SoakSteps < 0) return $"--soak-steps {o.SoakSteps}: must not be negative";
        if (o.SoakBatch < 1) return $"--soak-batch {o.SoakBatch}: must be at least 1";
        if (o.SampleSteps < 1) return $"--sample-steps {o.SampleSteps}: must be at least 1";
        if (o.Threads < 0) return $"--threads {o.Threads}: must not be negative";
        if (o.PeerRounds < 1) return $"--peer-rounds {o.PeerRounds}: must be at least 1";
        if (o.ConvCheck < 0) return $"--conv-check {o.ConvCheck}: must not be negative";
        if (o.SafeConvCompare < 0) return $"--safeconv-compare {o.SafeConvCompare}: must not be negative";
        if (o.InceptionBatch < 1 || o.InceptionBatches < 1) return "--inception-batch and --inception-batches: must be at least 1";
        if (o.Tf32 is not ("default" or "on" or "off")) return $"--tf32 {o.Tf32}: expected default, on or off";
        if (!Presets.Names.Contains(o.Preset, StringComparer.OrdinalIgnoreCase))
            return $"--preset {o.Preset}: expected one of {string.Join(", ", Presets.Names)}";
        return null;
    }
}

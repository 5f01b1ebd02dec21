using System.Globalization;

namespace Ddpm.Runtime;

/// <summary>Which device a setting asks for: auto (CUDA when TorchSharp sees it, else the CPU), the CPU, or CUDA.</summary>
public enum DeviceKind
{
    Auto,
    Cpu,
    Cuda,
}

/// <summary>
/// A device as a setting names it: "auto", "cpu", "cuda" or "cuda:N" (<see cref="Index"/> N). Parsed once where a
/// configuration is built; <see cref="TorchRuntime.ResolveDevice(DeviceSpec)"/> turns it into a torch device.
/// </summary>
public sealed record DeviceSpec(DeviceKind Kind, int? Index = null)
{
    public static DeviceSpec Auto { get; } = new(DeviceKind.Auto);
    public static DeviceSpec Cpu { get; } = new(DeviceKind.Cpu);

    /// <summary>Reads "auto", "cpu", "cuda" or "cuda:N" (any case, surrounding blanks ignored).</summary>
    public static DeviceSpec Parse(string? text)
    {
        var n = (text ?? "auto").Trim().ToLowerInvariant();
        if (n == "auto") return Auto;
        if (n == "cpu") return Cpu;
        if (n == "cuda") return new DeviceSpec(DeviceKind.Cuda);
        if (n.StartsWith("cuda:", StringComparison.Ordinal)
            && int.TryParse(n.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out int index))
            return new DeviceSpec(DeviceKind.Cuda, index);
        throw DdpmException.ForSetting("device", $"{text}: expected cpu, cuda, cuda:N or auto");
    }

    /// <summary>
    /// The device of one process of a data-parallel job on a machine with one GPU per process: "cuda" and "auto" (when
    /// CUDA is available) become cuda:<paramref name="localRank"/>; an explicit index or the CPU stays as it is.
    /// </summary>
    public DeviceSpec ForLocalRank(int localRank, bool cudaAvailable) =>
        Kind == DeviceKind.Cuda && Index is null || Kind == DeviceKind.Auto && cudaAvailable ? new DeviceSpec(DeviceKind.Cuda, localRank) : this;

    /// <summary>The spelling <see cref="Parse"/> reads back: auto, cpu, cuda or cuda:N.</summary>
    public override string ToString() => Kind switch
    {
        DeviceKind.Cpu => "cpu",
        DeviceKind.Cuda => Index is int i ? $"cuda:{i.ToString(CultureInfo.InvariantCulture)}" : "cuda",
        _ => "auto",
    };
}

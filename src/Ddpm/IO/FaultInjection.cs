namespace Ddpm.IO;

/// <summary>
/// Named points between the file operations of a write (a checkpoint, a pointer) where a test can simulate a crash:
/// the hook throws <see cref="Crash"/>, which the writers let pass without cleaning up, as a killed process would.
/// Never set outside tests.
/// </summary>
internal static class FaultInjection
{
    internal static Action<string>? Hook;

    internal static void At(string point) => Hook?.Invoke(point);

    /// <summary>The simulated death of the process: no catch block of a writer handles it.</summary>
    internal sealed class Crash(string point) : Exception($"simulated crash at {point}")
    {
        public string Point { get; } = point;
    }

    internal static bool IsCrash(Exception e) => e is Crash;
}

namespace Ddpm.Runtime;

/// <summary>
/// The randomness of a training step (batch order aside) is a pure function of (run seed, step): each step
/// seeds its own generator from this hash. A resumed run therefore needs only the seed and the step to draw
/// exactly the numbers an uninterrupted run would have drawn.
/// </summary>
public static class StepRandom
{
    /// <summary>SplitMix64 finaliser over (seed, step, stream), folded into a non-negative 63-bit seed.</summary>
    public static long SeedFor(long runSeed, long step, int stream = 0)
    {
        unchecked
        {
            ulong z = (ulong)runSeed * 0x9E3779B97F4A7C15UL + (ulong)step * 0xBF58476D1CE4E5B9UL + (ulong)stream * 0x94D049BB133111EBUL + 0x2545F4914F6CDD1DUL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            return (long)(z & 0x7FFF_FFFF_FFFF_FFFFUL);
        }
    }
}

using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>
/// Where a sampling run gets its N(0, I) draws. The order is fixed: x_T first (only when the run has no
/// <see cref="SamplingRun.Start"/>), then one draw of the state's shape per stochastic step, in visiting order
/// (deterministic samplers draw nothing after x_T). A loop from another project that draws only per-step noise
/// matches when it is given x_T as the start and the rest of its stream as the source.
/// </summary>
public abstract class NoiseSource
{
    /// <summary>The next draw of the given shape, float32 (any device; the loop moves it to the run's device).</summary>
    public abstract Tensor Next(long[] shape);

    /// <summary>
    /// Called once before a run: returns a source whose draws belong to that run alone (the seeded source makes a fresh
    /// generator; a caller's generator or stream is used as it is and advances).
    /// </summary>
    internal virtual NoiseSource ForRun() => this;

    internal virtual void EndRun() { }

    /// <summary>
    /// A CPU generator seeded with <paramref name="seed"/>, fresh for each run: the same seed gives the same draws on any
    /// device, run after run. (Outside a run, <see cref="Next"/> returns the seed's first draw, i.e. its x_T.)
    /// </summary>
    public static NoiseSource Seeded(long seed) => new SeededSource(seed);

    /// <summary>
    /// Draws from the caller's CPU generator (not disposed here; it advances with every draw, so a second run with the same
    /// generator continues the stream).
    /// </summary>
    public static NoiseSource From(Generator generator) => new GeneratorSource(generator ?? throw new ArgumentNullException(nameof(generator)));

    /// <summary>
    /// Draws from a caller's stream: <paramref name="next"/> gets the shape and returns N(0, I) noise of that shape (a
    /// float32 tensor the loop takes over and disposes).
    /// </summary>
    public static NoiseSource From(Func<long[], Tensor> next) => new StreamSource(next ?? throw new ArgumentNullException(nameof(next)));

    /// <summary>The seed of a seeded source, or null for a generator or stream.</summary>
    public virtual long? Seed => null;

    private sealed class SeededSource : NoiseSource
    {
        private readonly long _seed;
        private readonly Generator? _generator;
        public SeededSource(long seed, Generator? generator = null) { _seed = seed; _generator = generator; }
        public override long? Seed => _seed;
        internal override NoiseSource ForRun() => new SeededSource(_seed, new Generator(unchecked((ulong)_seed), CPU));
        internal override void EndRun() => _generator?.Dispose();
        public override Tensor Next(long[] shape)
        {
            if (_generator is null) using (var g = new Generator(unchecked((ulong)_seed), CPU)) return Normal(shape, g);
            return Normal(shape, _generator);
        }
    }

    private sealed class GeneratorSource(Generator generator) : NoiseSource
    {
        public override Tensor Next(long[] shape) => Normal(shape, generator);
    }

    private sealed class StreamSource(Func<long[], Tensor> next) : NoiseSource
    {
        public override Tensor Next(long[] shape)
        {
            var z = next(shape) ?? throw new DdpmException("sampler: the noise stream returned null");
            if (!z.shape.SequenceEqual(shape))
                throw new DdpmException($"sampler: the noise stream returned shape [{string.Join(", ", z.shape)}], expected [{string.Join(", ", shape)}]");
            return z.dtype == ScalarType.Float32 ? z : z.to(ScalarType.Float32);
        }
    }

    /// <summary>N(0, I) float32 on the CPU from the generator.</summary>
    internal static Tensor Normal(long[] shape, Generator generator) =>
        torch.randn(shape, dtype: ScalarType.Float32, device: CPU, generator: generator);
}

/// <summary>
/// One sampling run's inputs that are not the sampler's options: where its noise comes from, where it starts, and which
/// states it keeps.
/// </summary>
public sealed record SamplingRun
{
    /// <summary>The noise source; a generator seeded with 0 by default.</summary>
    public NoiseSource Noise { get; init; } = NoiseSource.Seeded(0);

    /// <summary>x_T to start from (any device, float32 or convertible; copied), or null to draw it first from <see cref="Noise"/>.</summary>
    public Tensor? Start { get; init; }

    /// <summary>
    /// 0 keeps no trajectory; k &gt; 0 keeps x_t and the predicted x_0 at every k-th visited step (counting the visited
    /// timesteps from the smallest, i.e. at original timestep t when all T steps run and t % k == 0), plus the final
    /// sample (as a frame with T = -1).
    /// </summary>
    public int KeepEvery { get; init; }

    /// <summary>A run seeded with <paramref name="seed"/>.</summary>
    public static SamplingRun Seeded(long seed) => new() { Noise = NoiseSource.Seeded(seed) };
}

using Ddpm.Data;
using Ddpm.Models;
using Ddpm.Runs;
using Ddpm.Runtime;
using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

/// <summary>
/// One training step rebuilt outside the trainer, so that tests can compute by hand what the trainer should have done.
/// The inputs follow the run's documented randomness (<see cref="CheckpointState.Rng"/>): the images are
/// <c>BatchSampler(seed).GetBatch(step)</c>; one CPU generator seeded with <c>StepRandom.SeedFor(seed, step, 1)</c> then
/// draws, in order, the flip coins (B uniforms, flip where u &lt; 0.5, as <see cref="Augment.RandomHorizontalFlip"/> documents)
/// when flips are on, the timesteps (U{0..T-1}, or multinomial over p for the importance sampler) and the noise.
/// The loss is written here from the paper (Algorithm 1 with x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps, eq. 4), with a_t from
/// the linear schedule computed here, not through GaussianDiffusion. Configurations used with it set dropout to 0, so
/// the forward pass has no randomness of its own.
/// </summary>
internal sealed class StepReplica : IDisposable
{
    /// <summary>The batch as the sampler returns it, before any flip.</summary>
    public Tensor X0 { get; }
    /// <summary>Whether the coin says to mirror image i (all false when flips are off).</summary>
    public bool[] Coins { get; }
    public Tensor T { get; }
    public long[] Ts { get; }
    public Tensor Noise { get; }

    private readonly double[] _alphaBar;

    /// <param name="probabilities">p_t of the importance sampler once warmed up; null for uniform t.</param>
    public StepReplica(TrainConfig config, ImageDataset data, long step, double[]? probabilities = null)
    {
        _alphaBar = LinearAlphaBar(config.Timesteps, config.BetaStart, config.BetaEnd);
        X0 = new BatchSampler(data.Count, config.BatchSize, config.Seed).GetBatch(data, step).DetachFromDisposeScope();
        using var gen = new Generator((ulong)StepRandom.SeedFor(config.Seed, step, 1), CPU);
        int b = config.BatchSize;
        Coins = new bool[b];
        if (config.RandomFlip)
        {
            using var u = rand(new long[] { b }, dtype: ScalarType.Float32, generator: gen);
            var us = u.data<float>().ToArray();
            for (int i = 0; i < b; i++) Coins[i] = us[i] < 0.5f;
        }
        if (probabilities is null)
            T = randint(0, config.Timesteps, new long[] { b }, dtype: ScalarType.Int64, generator: gen).DetachFromDisposeScope();
        else
        {
            using var p = tensor(probabilities, dtype: ScalarType.Float64);
            T = multinomial(p, b, replacement: true, generator: gen).DetachFromDisposeScope();
        }
        Ts = T.data<long>().ToArray();
        Noise = randn(X0.shape, generator: gen).DetachFromDisposeScope();
    }

    /// <summary>alpha_bar_t = prod_{s &lt;= t} (1 - beta_s), beta_s = start + (end - start) s / (T - 1) (Ho et al., section 4).</summary>
    public static double[] LinearAlphaBar(int timesteps, double betaStart, double betaEnd)
    {
        var a = new double[timesteps];
        double prod = 1;
        for (int s = 0; s < timesteps; s++)
        {
            double beta = timesteps == 1 ? betaStart : betaStart + (betaEnd - betaStart) * s / (timesteps - 1);
            prod *= 1 - beta;
            a[s] = prod;
        }
        return a;
    }

    /// <summary>Image i as the given orientation: 0 itself, 1 mirrored left-right (width), 2 mirrored top-bottom (height).</summary>
    public Tensor Oriented(int[] orientation)
    {
        using var scope = NewDisposeScope();
        var parts = new Tensor[orientation.Length];
        for (int i = 0; i < orientation.Length; i++)
        {
            var img = X0[i];
            parts[i] = orientation[i] switch { 0 => img, 1 => img.flip(2), _ => img.flip(1) };
        }
        return stack(parts).MoveToOuterDisposeScope();
    }

    /// <summary>The batch the trainer should feed: each image mirrored left-right where its coin says so.</summary>
    public Tensor CoinBatch() => Oriented(Coins.Select(c => c ? 1 : 0).ToArray());

    /// <summary>||eps - eps_theta(x_t, t)||^2 / d per example (Algorithm 1, line 5, as a mean over pixels).</summary>
    public Tensor PerExampleLoss(UNet model, Tensor x0)
    {
        using var scope = NewDisposeScope();
        var a = tensor(Ts.Select(t => (float)Math.Sqrt(_alphaBar[t])).ToArray()).view(-1, 1, 1, 1);
        var s = tensor(Ts.Select(t => (float)Math.Sqrt(1 - _alphaBar[t])).ToArray()).view(-1, 1, 1, 1);
        var xt = a * x0 + s * Noise;
        var eps = model.call(xt, T);
        return (Noise - eps).square().mean(new long[] { 1, 2, 3 }).MoveToOuterDisposeScope();
    }

    /// <summary>A separate network with the same weights and buffers as <paramref name="model"/> (a U-Net).</summary>
    public static UNet Clone(nn.Module<Tensor, Tensor, Tensor> model)
    {
        var copy = new UNet(((UNet)model).Config);
        using var _ = no_grad();
        var source = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in copy.named_parameters()) p.copy_(source[name]);
        var buffers = model.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        foreach (var (name, b) in copy.named_buffers()) b.copy_(buffers[name]);
        copy.train();
        return copy;
    }

    /// <summary>The gradient of <paramref name="loss"/> for every parameter (zeros where none flows), as float64 copies.</summary>
    public static Dictionary<string, Tensor> Gradients(nn.Module model, Tensor loss)
    {
        model.zero_grad();
        loss.backward();
        return model.named_parameters().ToDictionary(p => p.name,
            p => (p.parameter.grad is null ? zeros_like(p.parameter) : p.parameter.grad.detach().clone()).to(ScalarType.Float64).DetachFromDisposeScope());
    }

    /// <summary>sqrt(sum of squares) over every element of every tensor: the global norm.</summary>
    public static double GlobalNorm(IEnumerable<Tensor> tensors) =>
        Math.Sqrt(tensors.Sum(g => g.to(ScalarType.Float64).square().sum().item<double>()));

    /// <summary>Adds 0.05 N(0, 1) to every parameter, so that every layer gets a gradient (the output convolution starts at zero).</summary>
    public static void Perturb(nn.Module model, long seed)
    {
        using var gen = new Generator((ulong)seed, CPU);
        using var _ = no_grad();
        foreach (var p in model.parameters())
            p.add_(randn(p.shape, generator: gen) * 0.05f);
    }

    public void Dispose()
    {
        X0.Dispose();
        T.Dispose();
        Noise.Dispose();
    }
}

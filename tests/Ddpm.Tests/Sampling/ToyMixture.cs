using System.Diagnostics;
using Ddpm.Diffusion;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Tests.Sampling;

/// <summary>
/// The 2-D toy problem: a mixture of 8 Gaussians (std 0.05) on a circle of radius 0.7, and a small eps-MLP trained on
/// it with L_simple over the paper's T = 1000 linear schedule. The fixture trains once per test class (a few seconds
/// on one thread) and is shared by the tests of the class.
/// </summary>
public sealed class TrainedToy : IDisposable
{
    public const int Modes = 8;
    public const double Radius = 0.7, ModeStd = 0.05;
    public const int T = 1000;

    public TrainedToy()
    {
        int threads = get_num_threads();
        set_num_threads(1);
        try
        {
            var clock = Stopwatch.StartNew();
            manual_seed(2025);
            Diffusion = new GaussianDiffusion(NoiseSchedule.Linear(T), VarianceType.FixedSmall);
            Model = new ToyEpsModel();
            FinalLoss = Train(Diffusion, Model, Steps, Batch);
            TrainSeconds = clock.Elapsed.TotalSeconds;
            Model.eval();
        }
        finally
        {
            set_num_threads(threads);
        }
    }

    private const int Steps = 3000, Batch = 256;

    public GaussianDiffusion Diffusion { get; }
    public ToyEpsModel Model { get; }
    public double FinalLoss { get; }
    public double TrainSeconds { get; }

    private static double Train(GaussianDiffusion diffusion, ToyEpsModel model, int steps, int batch)
    {
        using var dataGen = new Generator(11, CPU);
        using var opt = optim.Adam(model.parameters(), lr: 3e-3);
        model.train();
        double last = 0;
        for (int step = 0; step < steps; step++)
        {
            using var scope = NewDisposeScope();
            var x0 = Sample(batch, dataGen);
            var t = randint(0, T, new[] { (long)batch }, dtype: ScalarType.Int64);
            var loss = diffusion.TrainingLosses(model, x0, t, randn_like(x0)).mean();
            opt.zero_grad();
            loss.backward();
            opt.step();
            if (step == steps * 6 / 10) foreach (var g in opt.ParamGroups) g.LearningRate = 1e-3;
            if (step == steps * 85 / 100) foreach (var g in opt.ParamGroups) g.LearningRate = 3e-4;
            if (step >= steps - 100) last += loss.item<float>() / 100;
        }
        return last;
    }

    /// <summary>n points of the mixture drawn from the generator.</summary>
    public static Tensor Sample(long n, Generator g)
    {
        using var scope = NewDisposeScope();
        var k = randint(0, Modes, new[] { n }, dtype: ScalarType.Int64, generator: g);
        var angle = k.to(ScalarType.Float32) * (float)(2 * Math.PI / Modes);
        var centres = stack(new[] { angle.cos(), angle.sin() }, 1) * (float)Radius;
        return (centres + randn(new[] { n, 2L }, generator: g) * (float)ModeStd).MoveToOuterDisposeScope();
    }

    public static double[][] Points(Tensor x)
    {
        var f = x.cpu().contiguous().data<float>().ToArray();
        return Enumerable.Range(0, f.Length / 2).Select(i => new[] { (double)f[2 * i], f[2 * i + 1] }).ToArray();
    }

    /// <summary>Distance from a point to the nearest mode centre.</summary>
    public static double DistanceToNearestMode(double[] p)
    {
        double best = double.MaxValue;
        for (int k = 0; k < Modes; k++)
        {
            double a = 2 * Math.PI * k / Modes;
            double dx = p[0] - Radius * Math.Cos(a), dy = p[1] - Radius * Math.Sin(a);
            best = Math.Min(best, Math.Sqrt(dx * dx + dy * dy));
        }
        return best;
    }

    /// <summary>Fraction of points within 4 mode standard deviations of a mode centre (true data: 99.97 %).</summary>
    public static double FractionNearMode(double[][] points) =>
        points.Count(p => DistanceToNearestMode(p) < 4 * ModeStd) / (double)points.Length;

    /// <summary>Sliced 1-Wasserstein distance over 64 evenly spaced directions between two equal-size sets.</summary>
    public static double SlicedWasserstein(double[][] a, double[][] b)
    {
        if (a.Length != b.Length) throw new ArgumentException("sets must have equal size");
        const int dirs = 64;
        double total = 0;
        for (int k = 0; k < dirs; k++)
        {
            double th = Math.PI * k / dirs, c = Math.Cos(th), s = Math.Sin(th);
            var pa = a.Select(p => p[0] * c + p[1] * s).Order().ToArray();
            var pb = b.Select(p => p[0] * c + p[1] * s).Order().ToArray();
            double sum = 0;
            for (int i = 0; i < pa.Length; i++) sum += Math.Abs(pa[i] - pb[i]);
            total += sum / pa.Length;
        }
        return total / dirs;
    }

    public void Dispose()
    {
        Model.Dispose();
        Diffusion.Dispose();
    }
}

/// <summary>eps_theta(x, t): x concatenated with a sinusoidal embedding of t, then a 3-layer SiLU MLP.</summary>
public sealed class ToyEpsModel : nn.Module<Tensor, Tensor, Tensor>
{
    private const int EmbDim = 32, Hidden = 128;
    private readonly Linear fc1, fc2, fc3, fc_out;
    private readonly Tensor _freqs;

    public ToyEpsModel() : base("toy_eps")
    {
        fc1 = nn.Linear(2 + EmbDim, Hidden);
        fc2 = nn.Linear(Hidden, Hidden);
        fc3 = nn.Linear(Hidden, Hidden);
        fc_out = nn.Linear(Hidden, 2);
        int half = EmbDim / 2;
        var f = Enumerable.Range(0, half).Select(i => (float)Math.Exp(-Math.Log(10000.0) * i / half)).ToArray();
        _freqs = tensor(f).DetachFromDisposeScope();
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor t)
    {
        using var scope = NewDisposeScope();
        var args = t.to(ScalarType.Float32).unsqueeze(1) * _freqs.to(x.device).unsqueeze(0);
        var h = cat(new[] { x, args.sin(), args.cos() }, 1);
        h = nn.functional.silu(fc1.call(h));
        h = nn.functional.silu(fc2.call(h));
        h = nn.functional.silu(fc3.call(h));
        return fc_out.call(h).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _freqs.Dispose();
        base.Dispose(disposing);
    }
}

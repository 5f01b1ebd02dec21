using Ddpm.Diffusion;
using Ddpm.Tests.Diffusion;
using static TorchSharp.torch;

namespace Ddpm.Tests.Sampling;

/// <summary>
/// Data x_0 ~ N(mu, sd^2) per coordinate, for which everything is known in closed form: the optimal predictions
/// E[x_0 | x_t] = mu + sqrt(ab) sd^2 (x_t - sqrt(ab) mu) / (ab sd^2 + 1 - ab) (and the matching eps and v), and the
/// probability-flow ODE, whose flow keeps (x_t - sqrt(ab_t) mu) / sqrt(ab_t sd^2 + 1 - ab_t) constant.
/// All computed in float64 from the schedule's alpha_bar.
/// </summary>
internal sealed class GaussianData
{
    private readonly NoiseSchedule _s;
    public double Mu { get; }
    public double Sd { get; }

    public GaussianData(NoiseSchedule schedule, double mu, double sd)
    {
        _s = schedule;
        Mu = mu;
        Sd = sd;
    }

    private double Ab(Tensor t) => _s.AlphasCumprod[(int)t[0].item<long>()];

    public Tensor Start(Tensor x, double ab)
    {
        var x64 = x.to(ScalarType.Float64);
        return Mu + Math.Sqrt(ab) * Sd * Sd / (ab * Sd * Sd + 1 - ab) * (x64 - Math.Sqrt(ab) * Mu);
    }

    public Tensor Noise(Tensor x, double ab) => (x.to(ScalarType.Float64) - Math.Sqrt(ab) * Start(x, ab)) / Math.Sqrt(1 - ab);

    public Tensor Velocity(Tensor x, double ab) => Math.Sqrt(ab) * Noise(x, ab) - Math.Sqrt(1 - ab) * Start(x, ab);

    /// <summary>The optimal model, predicting eps (0), x_0 (1) or v (2). Assumes one timestep per batch.</summary>
    public FuncModel Model(int kind = 0) => new((x, t) =>
    {
        double ab = Ab(t);
        var y = kind switch { 0 => Noise(x, ab), 1 => Start(x, ab), _ => Velocity(x, ab) };
        return y.to(ScalarType.Float32);
    });

    /// <summary>The exact ODE solution from x at timestep s to timestep t, then (if final) E[x_0 | x_t].</summary>
    public Tensor Flow(Tensor x, int s, int t, bool final)
    {
        double aS = _s.AlphasCumprod[s], aT = _s.AlphasCumprod[t];
        var z = (x.to(ScalarType.Float64) - Math.Sqrt(aS) * Mu) / Math.Sqrt(aS * Sd * Sd + 1 - aS);
        var xt = Math.Sqrt(aT) * Mu + Math.Sqrt(aT * Sd * Sd + 1 - aT) * z;
        return final ? Start(xt, aT) : xt;
    }
}

using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>
/// One kept step of a trajectory, on the CPU. For T &gt;= 0: Xt is the state fed to the model at original 0-based
/// timestep T (the paper's x_{T+1}) and PredX0 the x_0 the model predicted from it (after thresholding). The final
/// frame has T = -1: Xt is the final sample (the paper's x_0) and PredX0 the prediction made at the last step.
/// </summary>
public sealed record TrajectoryFrame(int T, Tensor Xt, Tensor PredX0);

/// <summary>The samples and the optional trajectory, all on the CPU; disposing it frees every tensor.</summary>
public sealed class SampleResult : IDisposable
{
    public SampleResult(Tensor samples, IReadOnlyList<TrajectoryFrame> trajectory)
    {
        Samples = samples;
        Trajectory = trajectory;
    }

    /// <summary>The final samples x_0, float32, of the requested shape.</summary>
    public Tensor Samples { get; }

    /// <summary>Kept frames in sampling order (T descending, the final frame T = -1 last); empty when none were kept.</summary>
    public IReadOnlyList<TrajectoryFrame> Trajectory { get; }

    public void Dispose()
    {
        Samples.Dispose();
        foreach (var f in Trajectory)
        {
            f.Xt.Dispose();
            f.PredX0.Dispose();
        }
    }
}

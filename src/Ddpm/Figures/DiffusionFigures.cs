using Ddpm.Diffusion;
using Ddpm.Sampling;
using static TorchSharp.torch;

namespace Ddpm.Figures;

/// <summary>
/// The two pictures that explain the method, as image batches ready for <c>ImageIO.SaveGrid</c> with
/// <c>columns = Frames</c>: one row per image, time running left to right.
/// </summary>
public static class DiffusionFigures
{
    /// <summary>The timesteps shown in a figure of <paramref name="frames"/> columns: 0 and T-1 and evenly spaced between.</summary>
    public static int[] FrameTimesteps(int timesteps, int frames)
    {
        if (frames < 2) throw DdpmException.ForSetting("frames", $"{frames}: must be at least 2");
        return Enumerable.Range(0, frames)
            .Select(i => (int)Math.Round(i * (timesteps - 1) / (double)(frames - 1)))
            .Distinct().ToArray();
    }

    /// <summary>
    /// The forward process: each image is noised by the Markov chain q(x_t | x_{t-1}) (eq. 2) one step at a
    /// time, and x_t is shown at the frame timesteps (the first column is x_0 itself, the data). Returns
    /// (rows * frames, C, H, W) ordered row by row.
    /// </summary>
    public static Tensor ForwardProcess(GaussianDiffusion diffusion, Tensor images, int frames, long seed)
    {
        var show = FrameTimesteps(diffusion.Timesteps, frames);
        using var scope = NewDisposeScope();
        using var gen = new Generator((ulong)seed, CPU);
        var x = images.cpu().to(ScalarType.Float32);
        var columns = new List<Tensor> { x.clone() };   // x_0: the data
        int next = 1;
        long n = x.shape[0];
        for (int t = 0; t < diffusion.Timesteps && next < show.Length; t++)
        {
            using var step = NewDisposeScope();
            var tt = full(new long[] { n }, t, ScalarType.Int64);
            var z = randn(x.shape, generator: gen);
            var xt = diffusion.QStep(x, tt, z);
            x.Dispose();
            x = xt.MoveToOuterDisposeScope();
            if (t == show[next]) { columns.Add(x.clone().MoveToOuterDisposeScope()); next++; }
        }
        var grid = stack(columns, 1);                 // (N, frames, C, H, W)
        return grid.reshape(-1, grid.shape[2], grid.shape[3], grid.shape[4]).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The reverse process from a sampler trajectory: for each image two rows, x_t from pure noise down to the
    /// sample, and the model's prediction of x_0 at the same steps. Returns (2 * N * frames, C, H, W).
    /// </summary>
    public static Tensor ReverseProcess(IReadOnlyList<TrajectoryFrame> trajectory, int frames)
    {
        if (trajectory.Count == 0) throw new ArgumentException("empty trajectory", nameof(trajectory));
        using var scope = NewDisposeScope();
        // Frames arrive from t = T-1 down to the final sample; pick evenly among them, first and last included.
        int count = Math.Min(frames, trajectory.Count);
        var pick = count < 2
            ? new List<TrajectoryFrame> { trajectory[^1] }
            : Enumerable.Range(0, count)
                .Select(i => (int)Math.Round(i * (trajectory.Count - 1) / (double)(count - 1)))
                .Distinct().Select(i => trajectory[i]).ToList();
        var xt = stack(pick.Select(f => f.Xt).ToList(), 1);        // (N, F, C, H, W)
        var x0 = stack(pick.Select(f => f.PredX0).ToList(), 1);
        var rows = stack(new[] { xt, x0 }, 1);                      // (N, 2, F, C, H, W)
        return rows.reshape(-1, xt.shape[2], xt.shape[3], xt.shape[4]).clamp(-1, 1).MoveToOuterDisposeScope();
    }
}

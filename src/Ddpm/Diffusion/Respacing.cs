using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Diffusion;

/// <summary>Chooses the subset of a schedule's 0-based timesteps that a sampler visits.</summary>
public static class TimestepSelection
{
    /// <summary>
    /// <paramref name="count"/> of the <paramref name="timesteps"/> steps, evenly spaced and rounded, ascending:
    /// round(i (T - 1) / (count - 1)) for i = 0..count-1. The list always holds T - 1 (the noisiest step, where x_T
    /// is drawn) and, for count &gt;= 2, 0 (the step that yields the final sample); count = T gives every step and
    /// count = 1 gives { T - 1 }. (improved-diffusion's space_timesteps with one section.)
    /// </summary>
    public static int[] EvenlySpaced(int timesteps, int count)
    {
        if (timesteps < 1) throw new DdpmException($"timesteps: T = {timesteps}, expected at least 1");
        if (count < 1 || count > timesteps)
            throw StepsOutOfRange(count, timesteps);
        if (count == 1) return new[] { timesteps - 1 };
        var result = new int[count];
        double stride = (timesteps - 1) / (double)(count - 1);
        for (int i = 0; i < count; i++) result[i] = (int)Math.Round(i * stride, MidpointRounding.ToEven);
        result[count - 1] = timesteps - 1;
        return result;
    }

    /// <summary>
    /// <paramref name="count"/> timesteps evenly spaced in the half log-SNR lambda_t = log(sqrt(alpha_bar_t) /
    /// sqrt(1 - alpha_bar_t)) between lambda_{T-1} and lambda_0 (DPM-Solver's "logSNR" spacing, which Lu et al. advise
    /// for low-resolution images), each target rounded to the timestep whose lambda is nearest, ascending. Always holds
    /// T - 1 and (for count &gt;= 2) 0. Where the discrete schedule is too coarse for distinct picks (lambda moves fast
    /// near t = 0), a pick moves up to one past the previous one, so exactly count distinct steps come back.
    /// </summary>
    public static int[] LogSnrSpaced(NoiseSchedule schedule, int count)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        int total = schedule.Timesteps;
        if (count < 1 || count > total) throw StepsOutOfRange(count, total);
        if (count == 1) return new[] { total - 1 };
        var lambda = schedule.AlphasCumprod.Select(HalfLogSnr).ToArray(); // decreasing in t
        double first = lambda[0], last = lambda[total - 1];
        var targets = new double[count];
        for (int i = 0; i < count; i++) targets[i] = first + (last - first) * i / (count - 1);
        return NearestDistinct(lambda, targets);
    }

    /// <summary>
    /// <paramref name="count"/> timesteps whose sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) is nearest (in log sigma)
    /// to Karras et al.'s sigmas (2022, eq. 5, rho = 7): sigma_i = (sigma_max^(1/rho) + i / (count - 1)
    /// (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho between the schedule's sigma_max = sigma_{T-1} and sigma_min = sigma_0,
    /// ascending, distinct as in <see cref="LogSnrSpaced"/>. The model sees integer timesteps, so the solver steps between
    /// the schedule's own alpha_bar at the picked timesteps (diffusers instead keeps the exact Karras sigmas and rounds
    /// only the timestep the model is given).
    /// </summary>
    public static int[] KarrasSpaced(NoiseSchedule schedule, int count)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        int total = schedule.Timesteps;
        if (count < 1 || count > total) throw StepsOutOfRange(count, total);
        if (count == 1) return new[] { total - 1 };
        const double rho = 7.0;
        var lambda = schedule.AlphasCumprod.Select(HalfLogSnr).ToArray(); // lambda = -log sigma
        double maxRoot = Math.Pow(Math.Exp(-lambda[total - 1]), 1 / rho), minRoot = Math.Pow(Math.Exp(-lambda[0]), 1 / rho);
        var targets = new double[count];
        for (int i = 0; i < count; i++)
        {
            // i = 0 is the smallest sigma (t = 0), as the picks go up in t.
            double sigma = Math.Pow(minRoot + i / (double)(count - 1) * (maxRoot - minRoot), rho);
            targets[i] = -Math.Log(sigma);
        }
        targets[0] = lambda[0];
        targets[count - 1] = lambda[total - 1];
        return NearestDistinct(lambda, targets);
    }

    /// <summary>
    /// For targets in decreasing lambda (increasing t), the timestep whose lambda is nearest to each, ascending; a pick
    /// that would repeat the previous one moves up by one, and picks crowding T - 1 are pulled back down, so the result
    /// has exactly targets.Length distinct timesteps ending at T - 1.
    /// </summary>
    private static int[] NearestDistinct(double[] lambda, double[] targets)
    {
        int total = lambda.Length, count = targets.Length;
        var result = new int[count];
        int t = 0;
        for (int i = 0; i < count; i++)
        {
            double target = targets[i];
            while (t + 1 < total && lambda[t + 1] >= target) t++; // lambda[t] >= target > lambda[t + 1]
            int pick = t + 1 < total && Math.Abs(lambda[t + 1] - target) < Math.Abs(lambda[t] - target) ? t + 1 : t;
            if (i > 0 && pick <= result[i - 1]) pick = result[i - 1] + 1;
            result[i] = pick;
        }
        // Picks pushed up near t = 0 may crowd the top: pull them back down from T - 1 so that they stay distinct.
        result[count - 1] = total - 1;
        for (int i = count - 2; i >= 0; i--)
            if (result[i] >= result[i + 1]) result[i] = result[i + 1] - 1;
        return result;
    }

    /// <summary>
    /// diffusers' "linspace": round(i (T - 1) / (n - 1)) for i = 0..n-1 (np.linspace, rounded half to even), ascending.
    /// With <paramref name="endsAtSigmaZero"/> (DPM-Solver's scheduler, whose last step lands at sigma = 0 rather than at
    /// a model evaluation at t = 0): n + 1 points, the smallest (0) dropped.
    /// </summary>
    public static int[] Linspace(int timesteps, int count, bool endsAtSigmaZero = false)
    {
        CheckCount(timesteps, count);
        int points = endsAtSigmaZero ? count + 1 : count;
        if (points == 1) return new[] { 0 };
        double step = (timesteps - 1) / (double)(points - 1);
        var all = new int[points];
        for (int i = 0; i < points; i++) all[i] = (int)Math.Round(i * step, MidpointRounding.ToEven);
        all[points - 1] = timesteps - 1;
        return Distinct(endsAtSigmaZero ? all[1..] : all, "linspace");
    }

    /// <summary>
    /// diffusers' "leading" (steps_offset 0): i (T div n) for i = 0..n-1, ascending. With
    /// <paramref name="endsAtSigmaZero"/> (DPM-Solver's scheduler): i (T div (n + 1)) for i = 1..n.
    /// </summary>
    public static int[] Leading(int timesteps, int count, bool endsAtSigmaZero = false)
    {
        CheckCount(timesteps, count);
        int ratio = endsAtSigmaZero ? timesteps / (count + 1) : timesteps / count;
        var result = new int[count];
        for (int i = 0; i < count; i++) result[i] = (endsAtSigmaZero ? i + 1 : i) * ratio;
        return Distinct(result, "leading");
    }

    /// <summary>
    /// diffusers' "trailing": round(T - i T / n) - 1 for i = n-1..0 (np.arange(T, 0, -T/n) rounded half to even, minus 1),
    /// ascending; always holds T - 1. The same for DDIM's and DPM-Solver's schedulers.
    /// </summary>
    public static int[] Trailing(int timesteps, int count)
    {
        CheckCount(timesteps, count);
        double ratio = timesteps / (double)count;
        var result = new int[count];
        for (int i = 0; i < count; i++)
            result[count - 1 - i] = (int)Math.Round(timesteps - i * ratio, MidpointRounding.ToEven) - 1;
        return Distinct(result, "trailing");
    }

    internal static void CheckCount(int timesteps, int count)
    {
        if (timesteps < 1) throw new DdpmException($"timesteps: T = {timesteps}, expected at least 1");
        if (count < 1 || count > timesteps) throw StepsOutOfRange(count, timesteps);
    }

    private static DdpmException StepsOutOfRange(int count, int timesteps) =>
        DdpmException.ForSetting("sample_steps", $"{count}: the schedule has T = {timesteps} timesteps, expected 1 to {timesteps}");

    private static int[] Distinct(int[] ascending, string spacing)
    {
        for (int i = 1; i < ascending.Length; i++)
            if (ascending[i] <= ascending[i - 1])
                throw new DdpmException($"spacing {spacing}: {ascending.Length} steps out of T = {ascending[^1] + 1} repeat a timestep; use fewer steps or another spacing");
        return ascending;
    }

    /// <summary>lambda = log(alpha / sigma) = (log alpha_bar - log(1 - alpha_bar)) / 2. (DPM-Solver, section 3.1)</summary>
    public static double HalfLogSnr(double alphaBar) => 0.5 * (Math.Log(alphaBar) - Math.Log(1.0 - alphaBar));

    /// <summary>
    /// An explicit list of 0-based timesteps, returned sorted ascending. Each must lie in [0, T - 1] and appear once.
    /// </summary>
    public static int[] FromList(IEnumerable<int> timesteps, int totalTimesteps)
    {
        ArgumentNullException.ThrowIfNull(timesteps);
        var list = timesteps.ToArray();
        if (list.Length == 0) throw DdpmException.ForSetting("timestep_list", ": the list is empty");
        foreach (var t in list)
            if (t < 0 || t >= totalTimesteps)
                throw DdpmException.ForSetting("timestep_list", $": {t} is outside 0..{totalTimesteps - 1} (the schedule has T = {totalTimesteps})");
        var sorted = list.Order().ToArray();
        for (int i = 1; i < sorted.Length; i++)
            if (sorted[i] == sorted[i - 1]) throw DdpmException.ForSetting("timestep_list", $": {sorted[i]} appears more than once");
        return sorted;
    }

    /// <summary>Parses a comma-separated list such as "0,250,500,750,999" and checks it as <see cref="FromList"/> does.</summary>
    public static int[] Parse(string text, int totalTimesteps)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var values = new List<int>();
        foreach (var p in parts)
        {
            if (!int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v))
                throw DdpmException.ForSetting("timestep_list", $": '{p}' is not an integer (expected a comma-separated list such as 0,500,999)");
            values.Add(v);
        }
        return FromList(values, totalTimesteps);
    }
}

/// <summary>
/// A diffusion respaced to a subset s_0 &lt; s_1 &lt; ... &lt; s_{K-1} of the original timesteps (improved DDPM,
/// section 4): a K-step schedule with beta'_i = 1 - alpha_bar_{s_i} / alpha_bar_{s_{i-1}} and alpha_bar_{s_{-1}} = 1,
/// so that alpha_bar'_i = alpha_bar_{s_i} and the previous step of s_i is s_{i-1} (the last step goes to
/// alpha_bar_prev = 1). The model keeps seeing the original timesteps through <see cref="WrapModel"/>.
/// The respaced <see cref="Diffusion"/> has the original's variance type, computed from the respaced betas
/// (fixedlarge uses beta'_i, as improved-diffusion does).
/// </summary>
public sealed class RespacedDiffusion : IDisposable
{
    private readonly int[] _timesteps;

    private RespacedDiffusion(int[] timesteps, GaussianDiffusion diffusion)
    {
        _timesteps = timesteps;
        Diffusion = diffusion;
    }

    /// <summary>The kept original timesteps, ascending; index i of the respaced diffusion is original step Timesteps[i].</summary>
    public IReadOnlyList<int> Timesteps => _timesteps;

    /// <summary>The K-step diffusion over the kept steps (owned: disposed with this object).</summary>
    public GaussianDiffusion Diffusion { get; }

    /// <summary>Respaces <paramref name="original"/> to the given timesteps (any order; checked as by <see cref="TimestepSelection.FromList"/>).</summary>
    public static RespacedDiffusion Create(GaussianDiffusion original, IEnumerable<int> timesteps)
    {
        ArgumentNullException.ThrowIfNull(original);
        var kept = TimestepSelection.FromList(timesteps, original.Timesteps);
        var schedule = NoiseSchedule.FromBetas(RespacedBetas(original.Schedule, kept));
        return new RespacedDiffusion(kept, new GaussianDiffusion(schedule, original.VarianceType, original.Prediction, original.Loss, original.VlbWeight, original.Weighting));
    }

    /// <summary>
    /// beta'_i = 1 - alpha_bar_{s_i} / alpha_bar_{s_{i-1}} with alpha_bar_{s_{-1}} = 1 (improved DDPM, eq. 19 and
    /// section 4). Where s_{i-1} = s_i - 1 the ratio is exactly alpha_{s_i}, so the original beta_{s_i} is taken as it
    /// is: respacing to every step gives back the original betas bit for bit.
    /// </summary>
    public static double[] RespacedBetas(NoiseSchedule schedule, IReadOnlyList<int> ascendingTimesteps)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        ArgumentNullException.ThrowIfNull(ascendingTimesteps);
        var betas = new double[ascendingTimesteps.Count];
        int prev = -1;
        for (int i = 0; i < betas.Length; i++)
        {
            int s = ascendingTimesteps[i];
            if (s <= prev) throw new DdpmException($"respacing: timesteps must be strictly ascending, got {s} after {prev}");
            if (s == prev + 1)
                betas[i] = schedule.Betas[s];
            else
            {
                double alphaBarPrev = prev < 0 ? 1.0 : schedule.AlphasCumprod[prev];
                betas[i] = 1.0 - schedule.AlphasCumprod[s] / alphaBarPrev;
            }
            prev = s;
        }
        return betas;
    }

    /// <summary>
    /// A module that maps respaced indices to original timesteps before calling <paramref name="model"/>. It does not
    /// own the model: disposing the wrapper leaves the model alone. Switch the model itself to eval mode.
    /// </summary>
    public TimestepMappedModel WrapModel(nn.Module<Tensor, Tensor, Tensor> model) => new(model, _timesteps);

    public void Dispose() => Diffusion.Dispose();
}

/// <summary>
/// Calls an inner model with t replaced by map[t]: the bridge between a respaced diffusion's indices and the
/// original timesteps the model was trained on. The inner model is not registered as a submodule (it is neither
/// owned nor disposed here).
/// </summary>
public sealed class TimestepMappedModel : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor, Tensor> _inner;
    private readonly Tensor _map;

    public TimestepMappedModel(nn.Module<Tensor, Tensor, Tensor> inner, IReadOnlyList<int> map) : base("timestep_mapped_model")
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(map);
        _inner = inner;
        _map = torch.tensor(map.Select(v => (long)v).ToArray(), dtype: ScalarType.Int64).DetachFromDisposeScope();
    }

    /// <summary>The model the calls go to.</summary>
    public nn.Module<Tensor, Tensor, Tensor> Inner => _inner;

    public override Tensor forward(Tensor x, Tensor t)
    {
        using var scope = torch.NewDisposeScope();
        var map = _map.device_type == t.device_type && _map.device_index == t.device_index ? _map : _map.to(t.device);
        var original = map.gather(0, t.to(ScalarType.Int64));
        return _inner.call(x, original).MoveToOuterDisposeScope();
    }

    /// <summary>Sets the training flag of the wrapper and of the inner model.</summary>
    public override void train(bool train = true)
    {
        base.train(train);
        _inner.train(train);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _map.Dispose();
        base.Dispose(disposing);
    }
}

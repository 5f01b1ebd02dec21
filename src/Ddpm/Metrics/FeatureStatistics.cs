using TorchSharp;
using static Ddpm.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Ddpm.Metrics;

/// <summary>
/// Mean and covariance of a set of feature vectors, as pytorch-fid stores them: float64, covariance dividing by N-1.
/// </summary>
public sealed class FeatureStatistics
{
    /// <summary>Mean, length <see cref="Dim"/>.</summary>
    public double[] Mu { get; }

    /// <summary>Covariance, <see cref="Dim"/> x <see cref="Dim"/>.</summary>
    public double[,] Sigma { get; }

    public int Dim => Mu.Length;

    /// <summary>Number of feature vectors the statistics came from (0 when unknown, e.g. loaded from an .npz).</summary>
    public long Count { get; }

    /// <summary>
    /// Statistics from a mean and covariance; both must hold finite numbers and sigma must be square, symmetric and of
    /// mu's length (a one-line error otherwise). Whether sigma is positive semi-definite is left to
    /// <see cref="FrechetDistance"/>, which checks it once for statistics that neither came from features nor from a file.
    /// </summary>
    public FeatureStatistics(double[] mu, double[,] sigma, long count = 0) : this(mu, sigma, count, "feature statistics", psdChecked: false) { }

    private FeatureStatistics(double[] mu, double[,] sigma, long count, string where, bool psdChecked)
    {
        ArgumentNullException.ThrowIfNull(mu);
        ArgumentNullException.ThrowIfNull(sigma);
        if (sigma.GetLength(0) != mu.Length || sigma.GetLength(1) != mu.Length)
            throw new DdpmException($"{where}: sigma is {sigma.GetLength(0)}x{sigma.GetLength(1)} but mu has length {mu.Length}");
        if (mu.Length == 0) throw new DdpmException($"{where}: mu is empty (0-dimensional statistics)");
        CheckFiniteAndSymmetric(mu, sigma, where);
        Mu = mu;
        Sigma = sigma;
        Count = count;
        CovarianceIsPsd = psdChecked;
    }

    /// <summary>
    /// True when sigma is known to be positive semi-definite up to round-off: computed from features (a Gram matrix),
    /// or checked when loaded from a file. <see cref="FrechetDistance"/> checks the others itself.
    /// </summary>
    internal bool CovarianceIsPsd { get; private set; }

    /// <summary>
    /// Largest asymmetry |s_ij - s_ji| accepted, relative to the largest |s_ij|: far above the round-off of a covariance
    /// computed in float32 or float64, far below any real asymmetry.
    /// </summary>
    public const double SymmetryTolerance = 1e-6;

    private static void CheckFiniteAndSymmetric(double[] mu, double[,] sigma, string where)
    {
        for (int i = 0; i < mu.Length; i++)
            if (!double.IsFinite(mu[i])) throw new DdpmException($"{where}: mu[{i}] is {mu[i]} (statistics must hold finite numbers)");
        int d = mu.Length;
        double largest = 0;
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++)
            {
                double v = sigma[i, j];
                if (!double.IsFinite(v)) throw new DdpmException($"{where}: sigma[{i}, {j}] is {v} (statistics must hold finite numbers)");
                largest = Math.Max(largest, Math.Abs(v));
            }
        for (int i = 0; i < d; i++)
            for (int j = i + 1; j < d; j++)
                if (Math.Abs(sigma[i, j] - sigma[j, i]) > SymmetryTolerance * largest)
                    throw new DdpmException($"{where}: sigma is not symmetric (sigma[{i}, {j}] = {sigma[i, j]:G6}, sigma[{j}, {i}] = {sigma[j, i]:G6}): not a covariance");
    }

    /// <summary>
    /// Throws unless sigma is positive semi-definite within <see cref="FrechetDistance.PsdTolerance"/> of its largest
    /// eigenvalue magnitude (smallest eigenvalue in float64).
    /// </summary>
    internal static void RequirePositiveSemiDefinite(Tensor eigenvalues, string where)
    {
        using var scope = NewDisposeScope();
        double smallest = eigenvalues.min().item<double>();
        double largest = eigenvalues.abs().max().item<double>();
        if (smallest < -FrechetDistance.PsdTolerance * largest)
            throw new DdpmException($"{where}: sigma is not positive semi-definite (smallest eigenvalue {smallest:G4}, largest magnitude {largest:G4}): not a covariance");
    }

    /// <summary>Statistics of an (N, D) feature matrix.</summary>
    public static FeatureStatistics FromFeatures(double[,] features)
    {
        ArgumentNullException.ThrowIfNull(features);
        using var scope = NewDisposeScope();
        var t = tensor(features, ScalarType.Float64);
        return FromFeatures(t);
    }

    /// <summary>Statistics of an (N, D) feature tensor of any floating type (computed in float64 on the CPU).</summary>
    public static FeatureStatistics FromFeatures(Tensor features)
    {
        ArgumentNullException.ThrowIfNull(features);
        if (features.dim() != 2)
            throw new DdpmException($"feature statistics: features must be (N, D), got shape ({string.Join(", ", features.shape)})");
        long n = features.shape[0];
        long d = features.shape[1];
        if (n < 2)
            throw new DdpmException($"feature statistics: need at least 2 feature vectors for a covariance, got {n}");
        if (d < 1)
            throw new DdpmException("feature statistics: features have dimension 0");
        using var scope = NewDisposeScope();
        var x = features.detach().to(CPU).to_type(ScalarType.Float64);
        var mean = x.mean(new long[] { 0 });
        var centred = x - mean;
        // Scalars passed to TorchSharp are explicit and held for the whole call; see Ddpm.Runtime.HeldScalars.
        using var dof = ((double)(n - 1)).ToScalar();
        using var half = 0.5.ToScalar();
        var cov = centred.t().matmul(centred) / dof;
        cov = cov.add(cov.t(), Int1) * half; // (cov + cov^T) / 2: exactly symmetric
        double[] mu = mean.data<double>().ToArray();
        double[] flat = cov.contiguous().data<double>().ToArray();
        return new FeatureStatistics(mu, ToMatrix(flat, (int)d), n, "feature statistics", psdChecked: true);
    }

    /// <summary>Saves as a pytorch-fid compatible .npz with arrays <c>mu</c> and <c>sigma</c> (atomic write).</summary>
    public void SaveNpz(string path)
    {
        int d = Dim;
        var flat = new double[(long)d * d];
        Buffer.BlockCopy(Sigma, 0, flat, 0, flat.Length * sizeof(double));
        NpzFile.Write(path, new Dictionary<string, NpyArray>
        {
            ["mu"] = new NpyArray(new long[] { d }, (double[])Mu.Clone()),
            ["sigma"] = new NpyArray(new long[] { d, d }, flat),
        });
    }

    /// <summary>
    /// Loads <c>mu</c> (D,) and <c>sigma</c> (D, D) from a pytorch-fid .npz; other arrays are ignored. Refuses, naming the
    /// file, statistics that are not those of any data: non-finite values, a sigma that is not square, symmetric, of
    /// mu's length and positive semi-definite (within <see cref="FrechetDistance.PsdTolerance"/> of its scale).
    /// </summary>
    public static FeatureStatistics LoadNpz(string path)
    {
        var arrays = NpzFile.Read(path);
        if (!arrays.ContainsKey("mu") && FeatureSums.AreSums(arrays))
            throw new DdpmException($"{path}: holds the partial feature sums of one shard, not statistics (mu, sigma): merge every shard's part into statistics first");
        if (!arrays.TryGetValue("mu", out var mu))
            throw new DdpmException($"{path}: array 'mu' missing");
        if (!arrays.TryGetValue("sigma", out var sigma))
            throw new DdpmException($"{path}: array 'sigma' missing");
        if (mu.Shape.Length != 1)
            throw new DdpmException($"{path}: array 'mu' must be 1-D, has shape {NpyArray.ShapeText(mu.Shape)}");
        long d = mu.Shape[0];
        if (sigma.Shape.Length != 2 || sigma.Shape[0] != d || sigma.Shape[1] != d)
            throw new DdpmException($"{path}: array 'sigma' must have shape ({d}, {d}) to match 'mu', has {NpyArray.ShapeText(sigma.Shape)}");
        var matrix = ToMatrix(sigma.Data, (int)d);
        var statistics = new FeatureStatistics(mu.Data, matrix, 0, path, psdChecked: false);
        using (var scope = NewDisposeScope())
        {
            var s = tensor(matrix, ScalarType.Float64);
            using var half = 0.5.ToScalar();
            RequirePositiveSemiDefinite(linalg.eigvalsh(s.add(s.t(), Int1) * half), path);   // of (s + s^T) / 2
        }
        statistics.CovarianceIsPsd = true;
        return statistics;
    }

    private static double[,] ToMatrix(double[] flat, int d)
    {
        var m = new double[d, d];
        Buffer.BlockCopy(flat, 0, m, 0, flat.Length * sizeof(double));
        return m;
    }
}

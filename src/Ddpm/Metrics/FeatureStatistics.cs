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

    public FeatureStatistics(double[] mu, double[,] sigma, long count = 0)
    {
        ArgumentNullException.ThrowIfNull(mu);
        ArgumentNullException.ThrowIfNull(sigma);
        if (sigma.GetLength(0) != mu.Length || sigma.GetLength(1) != mu.Length)
            throw new DdpmException($"feature statistics: sigma is {sigma.GetLength(0)}x{sigma.GetLength(1)} but mu has length {mu.Length}");
        Mu = mu;
        Sigma = sigma;
        Count = count;
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
        var cov = centred.t().matmul(centred) / (double)(n - 1);
        cov = (cov + cov.t()) * 0.5; // exactly symmetric
        double[] mu = mean.data<double>().ToArray();
        double[] flat = cov.contiguous().data<double>().ToArray();
        return new FeatureStatistics(mu, ToMatrix(flat, (int)d), n);
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

    /// <summary>Loads <c>mu</c> (D,) and <c>sigma</c> (D, D) from a pytorch-fid .npz; other arrays are ignored.</summary>
    public static FeatureStatistics LoadNpz(string path)
    {
        var arrays = NpzFile.Read(path);
        if (!arrays.TryGetValue("mu", out var mu))
            throw new DdpmException($"{path}: array 'mu' missing");
        if (!arrays.TryGetValue("sigma", out var sigma))
            throw new DdpmException($"{path}: array 'sigma' missing");
        if (mu.Shape.Length != 1)
            throw new DdpmException($"{path}: array 'mu' must be 1-D, has shape {NpyArray.ShapeText(mu.Shape)}");
        long d = mu.Shape[0];
        if (sigma.Shape.Length != 2 || sigma.Shape[0] != d || sigma.Shape[1] != d)
            throw new DdpmException($"{path}: array 'sigma' must have shape ({d}, {d}) to match 'mu', has {NpyArray.ShapeText(sigma.Shape)}");
        return new FeatureStatistics(mu.Data, ToMatrix(sigma.Data, (int)d));
    }

    private static double[,] ToMatrix(double[] flat, int d)
    {
        var m = new double[d, d];
        Buffer.BlockCopy(flat, 0, m, 0, flat.Length * sizeof(double));
        return m;
    }
}

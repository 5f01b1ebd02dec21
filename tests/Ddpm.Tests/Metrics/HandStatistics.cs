namespace Ddpm.Tests.Metrics;

/// <summary>
/// Feature statistics and the Frechet distance written out in plain float64 loops, independent of the library's
/// tensor code: mean, covariance over N - 1, and Tr(sqrt(S1 S2)) by the Denman-Beavers iteration on the product
/// (a matrix square root that needs no eigendecomposition; the library uses symmetric eigendecompositions instead).
/// </summary>
internal static class HandStatistics
{
    public static double[] Mean(double[][] rows)
    {
        int d = rows[0].Length;
        var mu = new double[d];
        foreach (var r in rows) for (int j = 0; j < d; j++) mu[j] += r[j];
        for (int j = 0; j < d; j++) mu[j] /= rows.Length;
        return mu;
    }

    public static double[,] Covariance(double[][] rows)
    {
        int d = rows[0].Length;
        var mu = Mean(rows);
        var s = new double[d, d];
        foreach (var r in rows)
            for (int i = 0; i < d; i++)
                for (int j = 0; j < d; j++) s[i, j] += (r[i] - mu[i]) * (r[j] - mu[j]);
        for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) s[i, j] /= rows.Length - 1;
        return s;
    }

    /// <summary>|mu1 - mu2|^2 + Tr S1 + Tr S2 - 2 Tr sqrt(S1 S2); S1 S2 must be non-singular.</summary>
    public static double Frechet(double[] mu1, double[,] s1, double[] mu2, double[,] s2)
    {
        int d = mu1.Length;
        double meanTerm = 0, traces = 0;
        for (int i = 0; i < d; i++)
        {
            meanTerm += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
            traces += s1[i, i] + s2[i, i];
        }
        var root = SquareRoot(Multiply(s1, s2));
        double trRoot = 0;
        for (int i = 0; i < d; i++) trRoot += root[i, i];
        return meanTerm + traces - 2 * trRoot;
    }

    public static double Frechet(double[][] a, double[][] b) => Frechet(Mean(a), Covariance(a), Mean(b), Covariance(b));

    /// <summary>
    /// Denman-Beavers: Y_0 = M, Z_0 = I, Y_{k+1} = (Y_k + Z_k^-1) / 2, Z_{k+1} = (Z_k + Y_k^-1) / 2; Y_k converges
    /// quadratically to the principal square root of M when M has no eigenvalues on the closed negative real axis.
    /// </summary>
    public static double[,] SquareRoot(double[,] m)
    {
        int d = m.GetLength(0);
        var y = (double[,])m.Clone();
        var z = Identity(d);
        for (int k = 0; k < 100; k++)
        {
            var yInv = Inverse(y);
            var zInv = Inverse(z);
            double change = 0, size = 0;
            var yNext = new double[d, d];
            for (int i = 0; i < d; i++)
                for (int j = 0; j < d; j++)
                {
                    yNext[i, j] = 0.5 * (y[i, j] + zInv[i, j]);
                    z[i, j] = 0.5 * (z[i, j] + yInv[i, j]);
                    change = Math.Max(change, Math.Abs(yNext[i, j] - y[i, j]));
                    size = Math.Max(size, Math.Abs(yNext[i, j]));
                }
            y = yNext;
            if (change <= 1e-15 * size) return y;
        }
        return y;
    }

    public static double[,] Multiply(double[,] a, double[,] b)
    {
        int n = a.GetLength(0), m = b.GetLength(1), k = a.GetLength(1);
        var c = new double[n, m];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++)
                for (int l = 0; l < k; l++) c[i, j] += a[i, l] * b[l, j];
        return c;
    }

    private static double[,] Identity(int d)
    {
        var e = new double[d, d];
        for (int i = 0; i < d; i++) e[i, i] = 1;
        return e;
    }

    /// <summary>Gauss-Jordan elimination with partial pivoting.</summary>
    public static double[,] Inverse(double[,] m)
    {
        int d = m.GetLength(0);
        var a = (double[,])m.Clone();
        var inv = Identity(d);
        for (int col = 0; col < d; col++)
        {
            int pivot = col;
            for (int r = col + 1; r < d; r++) if (Math.Abs(a[r, col]) > Math.Abs(a[pivot, col])) pivot = r;
            if (a[pivot, col] == 0) throw new InvalidOperationException("singular matrix");
            for (int j = 0; j < d; j++)
            {
                (a[col, j], a[pivot, j]) = (a[pivot, j], a[col, j]);
                (inv[col, j], inv[pivot, j]) = (inv[pivot, j], inv[col, j]);
            }
            double p = a[col, col];
            for (int j = 0; j < d; j++) { a[col, j] /= p; inv[col, j] /= p; }
            for (int r = 0; r < d; r++)
            {
                if (r == col) continue;
                double f = a[r, col];
                if (f == 0) continue;
                for (int j = 0; j < d; j++) { a[r, j] -= f * a[col, j]; inv[r, j] -= f * inv[col, j]; }
            }
        }
        return inv;
    }
}

using System.Globalization;
using System.Text;

namespace Ddpm.Diffusion;

/// <summary>
/// A schedule as a table, one row per 0-based timestep t, with the fields
/// t, beta, alpha_bar, posterior_variance, posterior_log_variance_clipped, posterior_mean_coef1, posterior_mean_coef2.
/// Every double is written in its shortest round-trip form with the invariant culture, so parsing it back
/// gives the identical double.
/// </summary>
public static class ScheduleTable
{
    /// <summary>The column names, in order.</summary>
    public static IReadOnlyList<string> Columns { get; } = new[]
    {
        "t", "beta", "alpha_bar", "posterior_variance", "posterior_log_variance_clipped",
        "posterior_mean_coef1", "posterior_mean_coef2",
    };

    /// <summary>
    /// CSV with a header line and '\n' line endings. Non-finite values (never produced by a valid schedule)
    /// are written as NaN, Infinity and -Infinity, which double.Parse reads back.
    /// </summary>
    public static string ToCsv(NoiseSchedule s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var sb = new StringBuilder();
        sb.Append(string.Join(',', Columns)).Append('\n');
        for (int t = 0; t < s.Timesteps; t++)
        {
            sb.Append(t.ToString(CultureInfo.InvariantCulture));
            foreach (var v in Row(s, t)) sb.Append(',').Append(Number(v));
            sb.Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>
    /// A JSON array with one object per timestep. JSON has no non-finite numbers, so a non-finite value
    /// (never produced by a valid schedule) is written as the string "NaN", "Infinity" or "-Infinity".
    /// </summary>
    public static string ToJson(NoiseSchedule s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var sb = new StringBuilder();
        sb.Append('[');
        for (int t = 0; t < s.Timesteps; t++)
        {
            sb.Append(t == 0 ? "\n  {" : ",\n  {");
            sb.Append("\"t\": ").Append(t.ToString(CultureInfo.InvariantCulture));
            var row = Row(s, t);
            for (int i = 0; i < row.Length; i++)
            {
                var v = row[i];
                sb.Append(", \"").Append(Columns[i + 1]).Append("\": ");
                if (double.IsFinite(v)) sb.Append(Number(v));
                else sb.Append('"').Append(Number(v)).Append('"');
            }
            sb.Append('}');
        }
        sb.Append(s.Timesteps > 0 ? "\n]\n" : "]\n");
        return sb.ToString();
    }

    private static double[] Row(NoiseSchedule s, int t) => new[]
    {
        s.Betas[t], s.AlphasCumprod[t], s.PosteriorVariance[t], s.PosteriorLogVarianceClipped[t],
        s.PosteriorMeanCoef1[t], s.PosteriorMeanCoef2[t],
    };

    private static string Number(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}

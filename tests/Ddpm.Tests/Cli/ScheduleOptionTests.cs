using System.Globalization;
using System.Text.Json;

namespace Ddpm.Tests.Cli;

/// <summary>
/// <c>ddpm schedule</c> with --beta-start/--beta-end and with the sigmoid schedule, every printed number against the closed
/// forms of reference.md section 1 computed here in float64.
/// </summary>
public class ScheduleOptionTests
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>The printed table as rows of (t, beta, alpha_bar, posterior_variance, log variance clipped, coef1, coef2).</summary>
    private static double[][] Csv(params string[] args)
    {
        var (code, output, err) = TestUtil.Cli(new[] { "schedule", "--format", "csv" }.Concat(args).ToArray());
        Assert.True(code == 0, err);
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(line => line.Split(',').Select(f => double.Parse(f, Inv)).ToArray()).ToArray();
    }

    /// <summary>
    /// Every column from the betas: alpha_bar = prod (1 - beta); posterior variance beta (1 - alpha_bar_prev) / (1 - alpha_bar);
    /// its log with t = 0 borrowing t = 1's; coef1 = beta sqrt(alpha_bar_prev) / (1 - alpha_bar);
    /// coef2 = (1 - alpha_bar_prev) sqrt(1 - beta) / (1 - alpha_bar). Relative tolerance 1e-12: the same float64 formulas,
    /// the order of a few roundings aside.
    /// </summary>
    private static void CheckAgainstBetas(double[][] rows, double[] betas)
    {
        Assert.Equal(betas.Length, rows.Length);
        double prev = 1;
        var logVariance = new double[betas.Length];
        for (int t = 0; t < betas.Length; t++)
        {
            double b = betas[t], ab = prev * (1 - b);
            double variance = b * (1 - prev) / (1 - ab);
            logVariance[t] = Math.Log(variance);
            var expected = new[] { t, b, ab, variance, double.NaN, b * Math.Sqrt(prev) / (1 - ab), (1 - prev) * Math.Sqrt(1 - b) / (1 - ab) };
            for (int c = 0; c < 7; c++)
                if (c != 4) Near(expected[c], rows[t][c], $"t {t} column {c}");
            prev = ab;
        }
        for (int t = 0; t < betas.Length; t++) Near(logVariance[Math.Max(t, 1)], rows[t][4], $"t {t} log variance");
    }

    private static void Near(double expected, double actual, string what) =>
        Assert.True(Math.Abs(expected - actual) <= 1e-12 * Math.Abs(expected), $"{what}: expected {expected:R}, printed {actual:R}");

    [Fact]
    public void LinearBetaStartAndEndSetTheEnds()
    {
        var rows = Csv("--schedule", "linear", "-T", "5", "--beta-start", "0.001", "--beta-end", "0.05");
        // linspace(0.001, 0.05, 5): step (0.05 - 0.001) / 4 = 0.01225.
        CheckAgainstBetas(rows, new[] { 0.001, 0.01325, 0.0255, 0.03775, 0.05 });
        // By hand: alpha_bar_1 = 0.999 x 0.98675 = 0.98576325.
        Assert.Equal(0.98576325, rows[1][2], 14);

        // The JSON form carries the same numbers.
        var (code, json, err) = TestUtil.Cli("schedule", "-T", "5", "--beta-start", "0.001", "--beta-end", "0.05", "--format", "json");
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(json);
        Assert.Equal(new[] { 0.001, 0.01325, 0.0255, 0.03775, 0.05 }.Select(b => Math.Round(b, 12)),
            doc.RootElement.EnumerateArray().Select(r => Math.Round(r.GetProperty("beta").GetDouble(), 12)));
    }

    [Fact]
    public void SigmoidFollowsLucidrainsClosedForm()
    {
        // With g(u) = (sigmoid(3) - sigmoid(6u - 3)) / (sigmoid(3) - sigmoid(-3)) (g(0) = 1, so the normalisation is 1),
        // alpha_bar at 0-based t is g((t + 1) / T), except the last beta, 1 - g(1) / g((T-1)/T) = 1, is clipped to 0.999.
        const int T = 4;
        var rows = Csv("--schedule", "sigmoid", "-T", T.ToString(Inv));
        static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));
        static double G(double u) => (Sigmoid(3) - Sigmoid(6 * u - 3)) / (Sigmoid(3) - Sigmoid(-3));
        var betas = new double[T];
        for (int t = 0; t < T; t++) betas[t] = Math.Min(1 - G((t + 1.0) / T) / G((double)t / T), 0.999);
        Assert.Equal(0.999, betas[T - 1]);
        CheckAgainstBetas(rows, betas);
        // By hand: g(1/4) = (0.9525741268 - 0.1824255238) / (0.9525741268 - 0.0474258732) = 0.8508535479; g(1/2) = 0.5 by
        // the sigmoid's symmetry; g(3/4) = 1 - g(1/4); the last alpha_bar is 0.001 g(3/4).
        Assert.Equal(0.8508535479, rows[0][2], 9);
        Assert.Equal(0.5, rows[1][2], 14);
        Assert.Equal(1 - 0.8508535479, rows[2][2], 9);
        Assert.Equal(0.001 * (1 - 0.8508535479), rows[3][2], 12);
    }

    [Theory]
    [InlineData("sigmoid", "--beta-start", "0.001")]
    [InlineData("sigmoid", "--beta-end", "0.05")]
    [InlineData("cosine", "--beta-end", "0.05")]
    public void BetasGivenToAScheduleWithoutThemAreAnError(string schedule, string option, string value)
    {
        // Only the linear schedule has betas to set; ignoring them silently would print a table the user did not ask for.
        var (code, output, err) = TestUtil.Cli("schedule", "--schedule", schedule, "-T", "4", option, value);
        Assert.Equal(1, code);
        Assert.Equal("", output);
        Assert.Equal($"error: {option} {value}: applies to --schedule linear only", err.Trim());
    }
}

using Ddpm.Diffusion;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Tests.Diffusion;

/// <summary>output = cat(a * x_t, b * 1): the first channels depend only on a, the variance channels only on b.</summary>
internal sealed class TwoPartModel : nn.Module<Tensor, Tensor, Tensor>
{
    public readonly Parameter a;
    public readonly Parameter b;

    public TwoPartModel(float a0, float b0) : base("two_part")
    {
        a = new Parameter(tensor(a0));
        b = new Parameter(tensor(b0));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor t) => cat(new[] { a * x, b * ones_like(x) }, 1);
}

public class LossesTests
{
    private static Tensor Ts(params long[] t) => tensor(t, dtype: ScalarType.Int64);

    private static double? Grad(Parameter p) => p.grad is null ? null : p.grad.item<float>();

    [Fact]
    public void DefaultLossIsStillTheMeanSquaredNoiseError()
    {
        // eps prediction, fixed variance, L_simple: bit for bit the formula of eq. 14, gradients included.
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(1000);
        using var d = new GaussianDiffusion(s);
        manual_seed(5);
        using var net = nn.Linear(4, 4);
        using var model = new FuncModel((x, _) => net.call(x));
        var x0 = randn(6, 4);
        var noise = randn(6, 4);
        var t = Ts(0, 3, 100, 500, 900, 999);

        var loss = d.TrainingLosses(model, x0, t, noise);
        loss.mean().backward();
        var grad = net.weight!.grad!.clone();
        net.zero_grad();
        var direct = (noise - net.call(d.QSample(x0, t, noise))).square().mean(new long[] { 1 });
        direct.mean().backward();
        Assert.True(loss.equal(direct).all().item<bool>());
        Assert.True(grad.equal(net.weight.grad!).all().item<bool>());
    }

    [Theory]
    [InlineData(PredictionType.Epsilon)]
    [InlineData(PredictionType.StartX)]
    [InlineData(PredictionType.Velocity)]
    [InlineData(PredictionType.Mean)]
    public void SimpleLossRegressesThePredictionsTarget(PredictionType prediction)
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Cosine(100);
        using var d = new GaussianDiffusion(s, VarianceType.FixedSmall, prediction);
        manual_seed(6);
        var x0 = rand(3, 1, 4, 4) * 2 - 1;
        var noise = randn(3, 1, 4, 4);
        var t = Ts(0, 50, 99);
        var xt = d.QSample(x0, t, noise);
        var target = d.ModelTarget(x0, xt, t, noise);
        using var zero = FuncModel.Zero();
        var expected = target.square().mean(new long[] { 1, 2, 3 });
        Assert.True(d.TrainingLosses(zero, x0, t, noise).allclose(expected, rtol: 1e-6, atol: 0));
        using var exact = new FuncModel((_, _) => target);
        Assert.True(d.TrainingLosses(exact, x0, t, noise).abs().max().item<float>() == 0f);
    }

    [Fact]
    public void VlbLossIsTTimesTheBoundsTerm()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(200, 5e-4, 0.1);
        using var d = new GaussianDiffusion(s, VarianceType.Learned, loss: LossType.Vlb);
        using var model = new TwoPartModel(0.3f, -4f);
        manual_seed(7);
        var x0 = rand(4, 1, 3, 3) * 2 - 1;
        var noise = randn(4, 1, 3, 3);
        var t = Ts(0, 1, 100, 199);
        var terms = d.TrainingLossTerms(model, x0, t, noise);
        var (bpd, _) = d.VbTermsBpd(model, x0, d.QSample(x0, t, noise), t, clipDenoised: false);
        Assert.True(terms.Loss.allclose(bpd * 200.0, rtol: 1e-6, atol: 0));
        Assert.Null(terms.Mse);
        // The true bound trains the mean too.
        terms.Loss.mean().backward();
        Assert.NotEqual(0.0, Grad(model.a) ?? 0.0);
        Assert.NotEqual(0.0, Grad(model.b) ?? 0.0);
    }

    [Theory]
    [InlineData(VarianceType.LearnedRange)]
    [InlineData(VarianceType.Learned)]
    public void HybridLossTrainsTheVarianceOnlyThroughTheBound(VarianceType variance)
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Cosine(100);
        using var d = new GaussianDiffusion(s, variance, loss: LossType.Hybrid);
        manual_seed(8);
        var x0 = rand(4, 2, 3, 3) * 2 - 1;
        var noise = randn(4, 2, 3, 3);
        var t = Ts(0, 10, 50, 99);
        using var model = new TwoPartModel(0.4f, variance == VarianceType.Learned ? -3f : 0.2f);

        var terms = d.TrainingLossTerms(model, x0, t, noise);
        Assert.True(terms.Loss.allclose(terms.Mse! + 0.001 * 100 * terms.Vb!, rtol: 1e-6, atol: 0));

        // L_vlb's gradient reaches the variance channels (b) and never the mean channels (a).
        terms.Vb!.mean().backward(retain_graph: true);
        Assert.Equal(0.0, Grad(model.a) ?? 0.0);
        Assert.NotEqual(0.0, Grad(model.b) ?? 0.0);
        model.zero_grad();
        // L_simple's gradient reaches only the mean channels.
        terms.Mse!.mean().backward();
        Assert.NotEqual(0.0, Grad(model.a) ?? 0.0);
        Assert.Equal(0.0, Grad(model.b) ?? 0.0);
    }
}

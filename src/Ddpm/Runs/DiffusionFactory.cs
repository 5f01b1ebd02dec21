using Ddpm.Configuration;
using Ddpm.Diffusion;
using Ddpm.Models;

namespace Ddpm.Runs;

/// <summary>Builds the schedule and the diffusion from a configuration's typed settings.</summary>
public static class DiffusionFactory
{
    public static NoiseSchedule Schedule(TrainConfig c) => c.Schedule switch
    {
        ScheduleKind.Linear => NoiseSchedule.Linear(c.Timesteps, c.BetaStart, c.BetaEnd),
        ScheduleKind.Sigmoid => NoiseSchedule.Sigmoid(c.Timesteps),
        _ => NoiseSchedule.Cosine(c.Timesteps),
    };

    public static GaussianDiffusion Diffusion(TrainConfig c) =>
        new(Schedule(c), c.Variance, c.Prediction, c.Loss, c.VlbWeight, LossWeighting.Of(c.LossWeighting, c.LossWeightGamma));

    /// <summary>
    /// Gives the network the output channels the variance needs (<see cref="GaussianDiffusion.ModelOutputChannels(VarianceType, int)"/>):
    /// an OutChannels of 0 is filled in when the variance is learned. Throws when an explicit OutChannels disagrees.
    /// </summary>
    public static void ConfigureOutputChannels(UNetConfig model, TrainConfig c)
    {
        int expected = GaussianDiffusion.ModelOutputChannels(c.Variance, model.InChannels);
        if (model.OutChannels == 0 && expected != model.InChannels) model.OutChannels = expected;
        if (model.EffectiveOutChannels != expected)
            throw DdpmException.ForSetting("variance",
                $"{SettingNames.Variance.Name(c.Variance)}: needs a model with {expected} output channels ({(expected == model.InChannels ? "the same as" : "twice")} the {model.InChannels} of the data), but the model outputs {model.EffectiveOutChannels}");
    }
}

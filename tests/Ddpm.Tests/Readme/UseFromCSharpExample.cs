// The README's section "Use it from C#" shows the lines between the two markers below, character for character
// (UseFromCSharpTests checks it, and runs the method on a tiny budget). Edit both together.
// README example begins
using Ddpm.Imaging;
using Ddpm.Metrics.Classifier;
using Ddpm.Metrics.Evaluation;
using Ddpm.Pipelines;
using Ddpm.Runs;
using Ddpm.Sampling;
using Ddpm.Training;

public static class UseFromCSharp
{
    // Call it from your program, e.g. UseFromCSharp.Run("data/mnist-10k", "runs/from-csharp", steps: 200).
    public static double Run(string digits, string runDir, int steps, int count = 64)
    {
        // Train the default CPU U-Net (mnist-tiny) on the first 1,000 digits; the run folder holds the checkpoint
        // and the trainer's own grid (samples/final.png, here drawn with DDIM in 10 steps).
        var config = new TrainConfig { Data = digits, MaxImages = 1000, Steps = steps, BatchSize = 16, Timesteps = 100,
            SampleCount = 16, SampleSampler = "ddim", SampleSteps = 10 };
        using (var trainer = Trainer.Start(config, runDir))
            trainer.Run();

        // Load it back and draw a grid of samples with DDIM in 10 steps.
        using var pipeline = DdpmPipeline.Load(runDir, TorchSharp.torch.CPU);
        using var samples = pipeline.Sample(count, seed: 0, new DdimSampler(new DdimOptions { Steps = 10 }));
        ImageIO.SaveGrid(samples, Path.Combine(runDir, "grid.png"), columns: 8);

        // A figure: the offline Frechet distance to real digits in the shipped classifier's features (lower is better).
        using var classifier = ClassifierFeatureExtractor.Load("mnist");
        using var generated = ImageSource.FromTensor(samples, "samples");
        using var real = ImageSource.Open(digits, new ImageSourceOptions { Count = 1000 });
        return DistanceEvaluation.Run(classifier, generated, real, new DistanceOptions()).Distance;
    }
}
// README example ends

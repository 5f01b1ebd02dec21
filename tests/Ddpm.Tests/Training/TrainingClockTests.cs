using Ddpm.Metrics.Evaluation;
using Ddpm.Runs;
using Ddpm.Training;
using Ddpm.Tests.Metrics;
using Ddpm.Tests.Sampling;
using Ddpm.Sampling;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

/// <summary>metrics.jsonl's train_sec: the run's training time, summed over resumes, without the evaluations.</summary>
public class TrainingClockTests
{
    [Fact]
    public void AResumedRunContinuesItsClockAndEvaluationsAreNotCounted()
    {
        var dir = Path.Combine(TestUtil.TempDir(), "run");
        using var data = TestUtil.TinyData(count: 24);
        var config = TestUtil.TinyConfig(steps: 4);
        config.EvalEvery = 2;
        config.EvalCount = 10;
        config.EvalRealCount = 24;
        using (var t = Trainer.Start(config, dir, data))
        {
            // An evaluator that takes a known long time (0.75 s a batch, at least one batch) that the training clock must not count.
            t.Evaluator = new TrainingEvaluator(t.Config, data, [new EvalMetric("fd_test", new PixelStatsExtractor())], (model, diffusion, shape, seed, ct) =>
            {
                Thread.Sleep(750);
                using var r = TestSampling.Ancestral(diffusion, model, shape, new SampleOptions { Seed = seed }, CPU, null, ct);
                return r.Samples.detach().clone();
            });
            t.Run();
        }
        var first = MetricsLog.Read(dir);
        var line4 = first.Single(l => l.Step == 4);
        Assert.True(line4.ElapsedSec - line4.TrainSec >= 0.7, $"elapsed {line4.ElapsedSec}, train {line4.TrainSec}: the evaluation at step 2 was counted");
        var eval2 = MetricsLog.ReadEvals(dir).Single(e => e.Step == 2);
        Assert.InRange(eval2.TrainSec!.Value, first.Single(l => l.Step == 2).TrainSeconds, line4.TrainSeconds);

        using (var t = Trainer.Resume(dir, data, c => { c.Steps = 6; c.EvalEvery = 0; }))
            t.Run();
        var line6 = MetricsLog.Read(dir).Single(l => l.Step == 6);
        Assert.True(line6.TrainSeconds > line4.TrainSeconds, "the resumed run's clock starts where the run stopped");
        Assert.True(line6.TrainSeconds >= line4.TrainSeconds + line6.ElapsedSec - 1e-6, $"{line6.TrainSeconds} < {line4.TrainSeconds} + {line6.ElapsedSec}");
    }
}

using Ddpm.Models;
using Ddpm.Runs;
using Ddpm.Training;

namespace Ddpm.Tests.Training;

/// <summary>
/// The estimate of a training step's memory, and the refusal of a batch it says does not fit (issue 11, item 5: a batch
/// of 100000 grew to 22 GB and was killed by the kernel without a message).
/// </summary>
public class TrainingMemoryTests
{
    /// <summary>One level, one residual block, 4 channels, 2x2 images: small enough to count by hand.</summary>
    private static UNetConfig Smallest() => new()
    {
        InChannels = 1, ImageSize = 2, BaseChannels = 4, ChannelMult = new[] { 1 }, NumResBlocks = 1,
        AttentionResolutions = Array.Empty<int>(), Dropout = 0.1, NormGroups = 4,
    };

    [Fact]
    public void ActivationsOfTheSmallestNetworkCountedByHand()
    {
        // Per pixel (4 pixels): conv_in's output 4 channels -> 16. Down block 4 -> 4: (3 x 4 + 6 x 4) x 4 = 144.
        // Middle: two blocks 288 and attention 8 x 4 x 4 + 2 x 4 x 4 (the 4x4 map twice) = 160. Up: two blocks on
        // 4 + 4 skip channels: (3 x 8 + 6 x 4) x 4 = 192 each, 384. conv_out: 3 x 4 x 4 = 48. Total 1040.
        Assert.Equal(1040, ModelStats.CountTrainingActivations(Smallest()));
        // Bytes: batch x 1040 x 4 bytes x 1.5, plus 5 float32 copies of the parameters.
        long p = ModelStats.CountParameters(Smallest());
        foreach (int b in new[] { 1, 2, 7, 64 })
            Assert.Equal(b * 1040 * 4 * 1.5 + 5.0 * 4 * p, TrainingMemory.EstimateBytes(Smallest(), b));
    }

    [Fact]
    public void TheEstimateGrowsLinearlyWithTheBatchAndWithTheResolution()
    {
        var model = Presets.Get("cifar-small");
        long[] byBatch = new[] { 1, 2, 3, 128, 100000 }.Select(b => TrainingMemory.EstimateBytes(model, b)).ToArray();
        for (int i = 1; i < byBatch.Length; i++) Assert.True(byBatch[i] > byBatch[i - 1]);
        Assert.InRange(byBatch[2] - byBatch[1] - (byBatch[1] - byBatch[0]), -1, 1); // equal steps: linear in the batch

        long last = 0;
        foreach (int size in new[] { 16, 32, 64, 128 })
        {
            long bytes = TrainingMemory.EstimateBytes(Presets.Get("cifar-small", size), 8);
            Assert.True(bytes > last, $"{size}x{size}: {bytes} bytes is not more than the smaller size's {last}");
            last = bytes;
        }
        // Activations scale at least with the pixels: 4 times the pixels, at least 4 times the values.
        Assert.True(ModelStats.CountTrainingActivations(Presets.Get("cifar-small", 64))
                    >= 4 * ModelStats.CountTrainingActivations(Presets.Get("cifar-small", 32)));
    }

    [Fact]
    public void ABatchAboveTheAvailableMemoryIsRefusedWithTheFigures()
    {
        var model = Presets.Get("cifar-small");
        long need = TrainingMemory.EstimateBytes(model, 64);
        TrainingMemory.Check(model, 64, need); // exactly enough: accepted
        var e = Assert.Throws<DdpmException>(() => TrainingMemory.Check(model, 64, need - 1));
        Assert.Equal("batch_size", e.Setting);
        Assert.StartsWith("batch_size 64: a training step needs about ", e.Message);
        Assert.DoesNotContain("\n", e.Message);

        // 1 GB available: the message names the estimate, what is available, and how many images would fit.
        const long gb = 1L << 30;
        var big = Assert.Throws<DdpmException>(() => TrainingMemory.Check(model, 100000, gb));
        Assert.Contains("but 1.0 GB is available", big.Message);
        int fits = int.Parse(System.Text.RegularExpressions.Regex.Match(big.Message, @"about (\d+) images per batch fit").Groups[1].Value);
        Assert.True(TrainingMemory.EstimateBytes(model, Math.Max(fits, 1)) <= gb || fits == 0);
        Assert.True(TrainingMemory.EstimateBytes(model, fits + 1) > gb);
        Assert.True(TrainingMemory.AvailableBytes() > 0);
    }

    [Fact]
    public void TheTrainerRefusesSuchABatchBeforeTheRunFolderExists()
    {
        // A network whose estimate (hundreds of GB: 8192 channels at 32x32) no machine running these tests has; nothing
        // of it is allocated, since the check runs before the network is built.
        using var data = TestUtil.TinyData(count: 24, channels: 1, size: 32);
        var config = TestUtil.TinyConfig();
        config.Model = new UNetConfig
        {
            InChannels = 1, ImageSize = 32, BaseChannels = 8192, ChannelMult = new[] { 1, 1 }, NumResBlocks = 2,
            AttentionResolutions = new[] { 32 }, Dropout = 0, NormGroups = 32,
        };
        config.BatchSize = 24;
        Assert.True(TrainingMemory.EstimateBytes(config.Model, 24) > TrainingMemory.AvailableBytes());
        var run = Path.Combine(TestUtil.TempDir(), "run");
        var e = Assert.Throws<DdpmException>(() => Trainer.Start(config, run, data));
        Assert.StartsWith("batch_size 24: a training step needs about ", e.Message);
        Assert.False(Directory.Exists(run));
    }
}

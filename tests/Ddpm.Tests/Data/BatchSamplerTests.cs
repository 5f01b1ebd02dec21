using Ddpm.Data;
using static TorchSharp.torch;

namespace Ddpm.Tests.Data;

public class BatchSamplerTests
{
    private static void AssertPermutation(IEnumerable<long> xs, int n)
        => Assert.Equal(Enumerable.Range(0, n).Select(i => (long)i), xs.Order());

    [Fact]
    public void SameArgumentsGiveSameBatches()
    {
        var a = new BatchSampler(100, 8, 42);
        var b = new BatchSampler(100, 8, 42);
        var c = new BatchSampler(100, 8, 43);
        for (long s = 0; s < 40; s++) Assert.Equal(a.IndicesForStep(s), b.IndicesForStep(s));
        Assert.NotEqual(a.IndicesForStep(0), c.IndicesForStep(0));
    }

    [Fact]
    public void EveryIndexOncePerEpochAndEpochsDiffer()
    {
        var s = new BatchSampler(10, 5, 7);
        var epoch0 = s.IndicesForStep(0).Concat(s.IndicesForStep(1)).ToArray();
        var epoch1 = s.IndicesForStep(2).Concat(s.IndicesForStep(3)).ToArray();
        AssertPermutation(epoch0, 10);
        AssertPermutation(epoch1, 10);
        Assert.NotEqual(epoch0, epoch1);
        Assert.NotEqual(Enumerable.Range(0, 10).Select(i => (long)i), epoch0); // actually shuffled
    }

    [Fact]
    public void BatchesRunOnAcrossEpochBoundaries()
    {
        // N = 10, B = 4: the stream is perm(0) ++ perm(1) ++ ...; step 2 takes perm(0)[8..9] and perm(1)[0..1].
        var s = new BatchSampler(10, 4, 123);
        var stream = Enumerable.Range(0, 5).SelectMany(k => s.IndicesForStep(k)).ToArray();
        Assert.Equal(20, stream.Length);
        AssertPermutation(stream[..10], 10);
        AssertPermutation(stream[10..], 10);
        var p0 = s.PermutationOf(0).Select(i => (long)i).ToArray();
        var p1 = s.PermutationOf(1).Select(i => (long)i).ToArray();
        Assert.Equal(new[] { p0[8], p0[9], p1[0], p1[1] }, s.IndicesForStep(2));
        Assert.Equal(0, s.EpochOfStep(2));
        Assert.Equal(1, s.EpochOfStep(3));
    }

    [Fact]
    public void BatchLargerThanDatasetCoversWholeEpochs()
    {
        var s = new BatchSampler(3, 7, 1);
        var stream = Enumerable.Range(0, 3).SelectMany(k => s.IndicesForStep(k)).ToArray(); // 21 = 7 epochs
        for (int e = 0; e < 7; e++) AssertPermutation(stream[(3 * e)..(3 * e + 3)], 3);
    }

    [Fact]
    public void RandomAccessEqualsSequentialIteration()
    {
        var sequential = new BatchSampler(37, 5, 99);
        long[]? last = null;
        for (long step = 0; step <= 300; step++) last = sequential.IndicesForStep(step);
        var fresh = new BatchSampler(37, 5, 99);
        Assert.Equal(last, fresh.IndicesForStep(300));
        Assert.Equal(new BatchSampler(37, 5, 99).IndicesForStep(17), fresh.IndicesForStep(17)); // going back works too
    }

    [Fact]
    public void ShuffleIsPinned()
    {
        // The permutation must not change between versions (resumed training depends on it). Every expected value is
        // what the independent Python implementation Fixtures/shuffle_reference.py prints (its output is committed
        // beside it as Fixtures/shuffle_reference.txt): SplitMix64 with state Mix(seed + golden) ^
        // Mix(epoch * 0xD1B54A32D192ED03 + 0x632BE59BD9B4E019), Fisher-Yates from the top with rejection-sampled draws.
        Assert.Equal(new[] { 3, 2, 7, 6, 9, 4, 8, 0, 1, 5 }, BatchSampler.Shuffle(10, 42, 0));
        Assert.Equal(new[] { 2, 5, 7, 0, 4, 6, 8, 3, 9, 1 }, BatchSampler.Shuffle(10, 42, 1));
        // A negative seed is taken as its two's complement.
        Assert.Equal(new[] { 1, 9, 4, 5, 6, 7, 8, 0, 2, 3 }, BatchSampler.Shuffle(10, -1, 7));
        Assert.Equal(new[] { 7, 14, 12, 17, 19, 6, 10, 18, 13, 2, 16, 8, 0, 4, 15, 1, 5, 9, 3, 11 },
            BatchSampler.Shuffle(20, 123456789, 3));
        Assert.Equal(new[] { 0 }, BatchSampler.Shuffle(1, 5, 0));
    }

    [Fact]
    public void BoundedDrawsRejectLikeTheReference()
    {
        // Fixtures/shuffle_reference.py, last line: a bound just above 2^63 rejects raw draws below
        // (2^64 - bound) mod bound (here raw draws 0, 1, 3, 4 and 5 of the first 8), so this pins the rejection path.
        var rng = new SplitMix64(99);
        ulong bound = (1UL << 63) + 12345;
        Assert.Equal(new ulong[] { 6175226964866081474, 3152424238367753482, 4196489246895106442, 416967549105584133 },
            Enumerable.Range(0, 4).Select(_ => rng.NextBelow(bound)).ToArray());
    }

    [Fact]
    public void FirstPositionIsRoughlyUniform()
    {
        var counts = new int[5];
        for (long e = 0; e < 5000; e++) counts[BatchSampler.Shuffle(5, 3, e)[0]]++;
        foreach (var c in counts) Assert.InRange(c, 850, 1150); // expectation 1000, sd about 28
    }

    [Fact]
    public void GetBatchSelectsTheImages()
    {
        using var ds = ImageDataset.FromTensor(arange(6 * 4, dtype: ScalarType.Float32).reshape(6, 1, 2, 2).div(24));
        var s = new BatchSampler(6, 4, 5);
        using var batch = s.GetBatch(ds, 1);
        var idx = s.IndicesForStep(1);
        Assert.Equal(new long[] { 4, 1, 2, 2 }, batch.shape);
        for (int i = 0; i < 4; i++) Assert.True(batch[i].allclose(ds.Images[idx[i]], 0, 0));
    }

    [Fact]
    public void BadSizesAreUserErrors()
    {
        Assert.Throws<DdpmException>(() => new BatchSampler(0, 4, 1));
        Assert.Throws<DdpmException>(() => new BatchSampler(10, 0, 1));
    }
}

using Ddpm.Metrics.Classifier;

namespace Ddpm.Tests.Metrics;

/// <summary>The accuracy and confusion matrix counted from predictions and labels, against a count by hand.</summary>
public class ClassifierEvaluationTests
{
    [Fact]
    public void CountsTheConfusionMatrixImageByImage()
    {
        // Six images of three classes: (label, predicted) = (0,0) (0,1) (1,1) (2,2) (2,0) (2,2): four right.
        long[] labels = { 0, 0, 1, 2, 2, 2 };
        long[] predicted = { 0, 1, 1, 2, 0, 2 };
        var e = ClassifierEvaluation.FromPredictions(predicted, labels, classes: 3);
        Assert.Equal(6, e.Count);
        Assert.Equal(4, e.Correct);
        Assert.Equal(4 / 6.0, e.Accuracy, 15);
        Assert.Equal(new long[,] { { 1, 1, 0 }, { 0, 1, 0 }, { 1, 0, 2 } }, e.Confusion);
        Assert.Equal(0.5, e.ClassAccuracy(0), 15);
        Assert.Equal(1.0, e.ClassAccuracy(1), 15);
        Assert.Equal(2 / 3.0, e.ClassAccuracy(2), 15);
    }

    [Fact]
    public void PredictionsAndLabelsMustPair()
    {
        Assert.Throws<ArgumentException>(() => ClassifierEvaluation.FromPredictions(new long[] { 0, 1 }, new long[] { 0 }, classes: 2));
        Assert.True(double.IsNaN(ClassifierEvaluation.FromPredictions(Array.Empty<long>(), Array.Empty<long>(), classes: 2).Accuracy));
    }
}

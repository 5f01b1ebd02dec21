namespace Ddpm.Configuration;

/// <summary>Which offline classifier scores samples while a run trains.</summary>
public enum EvalClassifierKind
{
    /// <summary>Chosen from the training data by <see cref="EvalClassifierChoice.Resolve"/>.</summary>
    Auto,
    /// <summary>The shipped MNIST classifier.</summary>
    Mnist,
    /// <summary>The shipped Fashion-MNIST classifier.</summary>
    FashionMnist,
    /// <summary>No classifier (FID only, when Inception weights are given).</summary>
    None,
    /// <summary>A classifier weights file (<see cref="EvalClassifierChoice.Path"/>).</summary>
    File,
}

/// <summary>
/// The <c>eval_classifier</c> setting: auto, mnist, fashion-mnist, none, or a classifier weights file. Written to
/// config.json as that one string.
/// </summary>
public sealed record EvalClassifierChoice(EvalClassifierKind Kind, string? Path = null)
{
    public static EvalClassifierChoice Auto { get; } = new(EvalClassifierKind.Auto);
    public static EvalClassifierChoice Mnist { get; } = new(EvalClassifierKind.Mnist);
    public static EvalClassifierChoice FashionMnist { get; } = new(EvalClassifierKind.FashionMnist);
    public static EvalClassifierChoice None { get; } = new(EvalClassifierKind.None);

    /// <summary>A weights file.</summary>
    public static EvalClassifierChoice File(string path) => new(EvalClassifierKind.File, path);

    /// <summary>auto, mnist, fashion-mnist (or fashion_mnist), none (any case), or else the path of a weights file.</summary>
    public static EvalClassifierChoice Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
            throw DdpmException.ForSetting("eval_classifier", "'': expected auto, mnist, fashion-mnist, none or a classifier weights file");
        var t = text.Trim();
        switch (t.ToLowerInvariant())
        {
            case "auto": return Auto;
            case "mnist": return Mnist;
            case "fashion-mnist" or "fashion_mnist" or "fashionmnist": return FashionMnist;
            case "none": return None;
            default: return File(t);
        }
    }

    /// <summary>The string <see cref="Parse"/> reads back: auto, mnist, fashion-mnist, none or the weights file.</summary>
    public override string ToString() => Kind switch
    {
        EvalClassifierKind.Mnist => "mnist",
        EvalClassifierKind.FashionMnist => "fashion-mnist",
        EvalClassifierKind.None => "none",
        EvalClassifierKind.File => Path ?? "",
        _ => "auto",
    };

    /// <summary>
    /// The classifier to load, or null for none. Auto's rule, the whole of it: fashion-mnist when the training
    /// data's path contains "fashion" (any case; the Fashion-MNIST files and folders are named so), else mnist for
    /// grey (1-channel) data, else none (no shipped classifier knows RGB images). Any other choice is itself.
    /// </summary>
    public EvalClassifierChoice? Resolve(string dataPath, int channels)
    {
        if (Kind == EvalClassifierKind.None) return null;
        if (Kind != EvalClassifierKind.Auto) return this;
        if ((dataPath ?? "").Contains("fashion", StringComparison.OrdinalIgnoreCase)) return FashionMnist;
        return channels == 1 ? Mnist : null;
    }

    /// <summary>Why <see cref="Resolve"/> gives what it gives, in words (for a front end to show).</summary>
    public string Describe(string dataPath, int channels)
    {
        var resolved = Resolve(dataPath, channels);
        string name = resolved?.ToString() ?? "none";
        if (Kind != EvalClassifierKind.Auto) return name;
        string why = resolved == FashionMnist ? "the data path contains 'fashion'"
            : resolved == Mnist ? "grey data whose path does not contain 'fashion'" : "no shipped classifier for RGB data";
        return $"{name} (auto: {why})";
    }
}

using Ddpm.Metrics.Classifier;
using Ddpm.Runs;
using Ddpm.Runtime;
using Ddpm.Training;

namespace Ddpm.Tests.Architecture;

/// <summary>
/// The library's namespaces form a DAG in the layer order the README describes: a namespace uses only namespaces of
/// its own layer or below. A cycle, or an edge up the layers, fails here with its names.
/// </summary>
public class ArchitectureTests
{
    /// <summary>
    /// The layers, lowest first. A namespace not listed belongs to its nearest listed parent (Ddpm.Sampling.X is in
    /// Sampling's layer). Edges inside a layer are allowed as long as they form no cycle.
    /// </summary>
    public static readonly string[][] Layers =
    [
        ["Ddpm"],                                        // DdpmException
        ["Ddpm.IO", "Ddpm.Runtime", "Ddpm.Distributed"], // files, tensor-engine settings, SafeConv, StepRandom; MPI, shards
        ["Ddpm.Imaging", "Ddpm.Data"],                   // images and data sets
        ["Ddpm.Diffusion", "Ddpm.Models"],               // the math and the networks
        ["Ddpm.Sampling", "Ddpm.Configuration"],        // samplers; the names and declarations of settings
        ["Ddpm.Figures", "Ddpm.Runs"],                   // figures of the paper; run folder, checkpoints, configuration
        ["Ddpm.Interop"],                                // other projects' checkpoints: diffusers folders, the original's
        ["Ddpm.Training", "Ddpm.Pipelines", "Ddpm.Plots"], // training; loading a trained model to sample or score it; a run's curves
        ["Ddpm.Metrics"],                                // feature extractors, FID, KID, IS, the offline classifiers
        ["Ddpm.Metrics.Evaluation"],                     // comparing sources; the training-time evaluator
    ];

    private static Dictionary<string, SortedSet<string>> LibraryGraph() => NamespaceGraph.Union(
        NamespaceGraph.FromAssembly(typeof(DdpmException).Assembly, "Ddpm"),
        NamespaceGraph.FromSources(Path.Combine(TestUtil.RepoRoot(), "src", "Ddpm"), "Ddpm"));

    [Fact]
    public void TheLibrarysNamespacesFormNoCycle()
    {
        var graph = LibraryGraph();
        var cycle = NamespaceGraph.FindCycle(graph);
        Assert.True(cycle is null, $"namespace cycle: {(cycle is null ? "" : string.Join(" -> ", cycle))}");
    }

    [Fact]
    public void EveryNamespaceUsesOnlyItsOwnLayerOrLower()
    {
        var graph = LibraryGraph();
        var problems = new List<string>();
        foreach (var (from, edges) in graph.OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            int? fromLayer = LayerOf(from);
            if (fromLayer is null) { problems.Add($"{from} is in no layer (add it to {nameof(ArchitectureTests)}.{nameof(Layers)} and the README)"); continue; }
            foreach (var to in edges)
                if (LayerOf(to) is int toLayer && toLayer > fromLayer)
                    problems.Add($"{from} uses {to}, a higher layer");
        }
        Assert.True(problems.Count == 0, string.Join("; ", problems));
    }

    [Fact]
    public void TheMathAndTheRunFolderImportNothingAboveThem()
    {
        // The issue's promise in so many words, and the new layer below both training and inference.
        var graph = LibraryGraph();
        string[] above = ["Ddpm.Runs", "Ddpm.Training", "Ddpm.Pipelines", "Ddpm.Metrics", "Ddpm.Metrics.Evaluation",
                          "Ddpm.Metrics.Inception", "Ddpm.Metrics.Classifier", "Ddpm.Figures"];
        foreach (var low in new[] { "Ddpm.Diffusion", "Ddpm.Models", "Ddpm.Sampling", "Ddpm.Runtime" })
            Assert.Empty(graph[low].Intersect(above));
        Assert.Empty(graph["Ddpm.Runs"].Intersect(["Ddpm.Training", "Ddpm.Pipelines", "Ddpm.Metrics", "Ddpm.Metrics.Evaluation"]));
        Assert.DoesNotContain("Ddpm.Training", graph["Ddpm.Pipelines"]);
        Assert.DoesNotContain("Ddpm.Pipelines", graph["Ddpm.Training"]);
        Assert.DoesNotContain(graph["Ddpm.Training"], n => n.StartsWith("Ddpm.Metrics", StringComparison.Ordinal));
        // Inception and the classifiers needed Models only for SafeConv, now in Runtime.
        Assert.DoesNotContain("Ddpm.Models", graph["Ddpm.Metrics.Inception"]);
        Assert.DoesNotContain("Ddpm.Models", graph["Ddpm.Metrics.Classifier"]);
    }

    [Fact]
    public void TheCycleFinderNamesAHandMadeCycleAndPassesADag()
    {
        static Dictionary<string, SortedSet<string>> G(params (string From, string To)[] edges)
        {
            var g = new Dictionary<string, SortedSet<string>>();
            foreach (var (a, b) in edges)
            {
                if (!g.ContainsKey(a)) g[a] = new SortedSet<string>(StringComparer.Ordinal);
                if (!g.ContainsKey(b)) g[b] = new SortedSet<string>(StringComparer.Ordinal);
                g[a].Add(b);
            }
            return g;
        }

        // A diamond is no cycle: D is reached twice, but never while on the stack.
        Assert.Null(NamespaceGraph.FindCycle(G(("A", "B"), ("A", "C"), ("B", "D"), ("C", "D"))));
        // Training <-> Metrics as it was: found and named in order.
        Assert.Equal(["Metrics", "Training", "Metrics"], NamespaceGraph.FindCycle(G(("Metrics", "Training"), ("Training", "Metrics"))));
        // The three-namespace cycle of the issue, entered from a node outside it: only the cycle is reported.
        var cycle = NamespaceGraph.FindCycle(G(("Cli", "Evaluation"), ("Evaluation", "Pipelines"), ("Pipelines", "Training"),
            ("Training", "Evaluation"), ("Training", "Models")));
        Assert.Equal(["Evaluation", "Pipelines", "Training", "Evaluation"], cycle);
        // A cycle the search reaches only after finishing an acyclic part.
        Assert.Equal(["X", "Y", "X"], NamespaceGraph.FindCycle(G(("A", "B"), ("X", "Y"), ("Y", "X"))));
    }

    [Fact]
    public void TheAssemblyScanSeesDependenciesThatOnlyMethodBodiesHave()
    {
        // Trainer builds its timestep sampler in its constructor's body, and ClassifierTrainer seeds its steps with
        // StepRandom inside a method: neither appears in a signature, so only the IL shows them.
        Assert.Contains(typeof(TimestepSamplers), NamespaceGraph.ReferencedTypes(typeof(Trainer)));
        Assert.Contains(typeof(DiffusionFactory), NamespaceGraph.ReferencedTypes(typeof(Trainer)));
        var classifier = NamespaceGraph.ReferencedTypes(typeof(ClassifierTrainer));
        Assert.Contains(typeof(StepRandom), classifier);
        // Nothing of a type it does not use.
        Assert.DoesNotContain(typeof(CheckpointStore), classifier);
    }

    [Fact]
    public void TheSourceScanReadsTheUsingLines()
    {
        var graph = NamespaceGraph.FromSources(Path.Combine(TestUtil.RepoRoot(), "src", "Ddpm"), "Ddpm");
        // Trainer.cs: "using Ddpm.Runs;" and "using Ddpm.Sampling;"; ClassifierTrainer.cs: "using Ddpm.Runtime;".
        Assert.Contains("Ddpm.Runs", graph["Ddpm.Training"]);
        Assert.Contains("Ddpm.Sampling", graph["Ddpm.Training"]);
        Assert.Contains("Ddpm.Runtime", graph["Ddpm.Metrics.Classifier"]);
        Assert.DoesNotContain("Ddpm.Training", graph["Ddpm.Training"]);
    }

    private static int? LayerOf(string ns)
    {
        for (var n = ns; ; n = n[..n.LastIndexOf('.')])
        {
            for (int i = 0; i < Layers.Length; i++)
                if (Layers[i].Contains(n)) return i;
            if (!n.Contains('.')) return null;
        }
    }
}

using System.Diagnostics;
using Ddpm.Configuration;
using Ddpm.Data;
using Ddpm.Diffusion;
using Ddpm.Distributed;
using Ddpm.Imaging;
using Ddpm.Interop;
using Ddpm.IO;
using Ddpm.Models;
using Ddpm.Runs;
using Ddpm.Runtime;
using Ddpm.Sampling;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Training;

/// <summary>Statistics of one optimizer update.</summary>
public readonly record struct StepStats(long Step, double Loss, double GradNorm, double LearningRate);

/// <summary>
/// What the updates since the previous read-back did: how many there were, their mean loss, and the last update's
/// loss, gradient norm (before clipping) and learning rate.
/// </summary>
public readonly record struct StepWindow(long LastStep, long Steps, double MeanLoss, double LastLoss, double GradNorm, double LearningRate);

/// <summary>
/// Trains a network (the configuration's U-Net, or any module from a factory given to <see cref="Start"/>) with the diffusion's loss (by default eps prediction and L_simple, Ho et al. 2020, Algorithm 1): Adam with linear warm-up,
/// global-norm gradient clipping, an EMA of the parameters, a run folder with config, metrics, TensorBoard
/// events, sample grids and atomic checkpoints. Each step's randomness is a pure function of (seed, step), so a
/// resumed run reproduces an uninterrupted one exactly.
/// </summary>
public sealed partial class Trainer : IDisposable
{
    public const string ConfigFile = RunFolder.ConfigFile;
    public const string SamplesFolder = "samples";

    public TrainConfig Config { get; }
    public string RunDir { get; }
    /// <summary>The network trained: maps x_t (B, C, H, W) and t (B,) int64 to (B, C or 2C, H, W).</summary>
    public nn.Module<Tensor, Tensor, Tensor> Model { get; }
    /// <summary>The exponential moving average of <see cref="Model"/>'s parameters (what grids and evaluations use).</summary>
    public nn.Module<Tensor, Tensor, Tensor> EmaModel { get; }
    public GaussianDiffusion Diffusion { get; }
    public ImageDataset Data { get; }
    public Device Device { get; }
    /// <summary>Number of updates done; the next update is this 0-based step.</summary>
    public long Step { get; private set; }

    private readonly Adam _optimizer;
    private readonly AdamUpdate _adam;
    private readonly LearningRateSchedule _learningRates;
    private readonly Ema _ema;
    private readonly BatchSampler _batches;
    private readonly ITimestepSampler _timesteps;
    private readonly bool _ownsData;
    private readonly Parameter[] _parameters;
    private readonly Tensor _images;
    private readonly DivergenceGuard _guard;
    // Figures of the updates since the last read-back, kept on the device (float64 sum: the same additions, in the
    // same order, as summing the read-back float32 losses on the host).
    private readonly Tensor _windowLossSum;
    private readonly Tensor _lastLoss;
    private readonly Tensor _lastGradNorm;
    private long _windowSteps;
    private double _lastLearningRate;

    /// <summary>Data sets up to this size are copied to the model's device once, so batches are gathered there.</summary>
    public const long DeviceDataLimitBytes = 2L << 30;

    private Trainer(TrainConfig config, string runDir, ImageDataset data, bool ownsData, Device device, ModelFactory? modelFactory,
        ICommunicator? communicator = null)
    {
        if (communicator is not null)
        {
            if (config.BatchSize < communicator.Size)
                throw DdpmException.ForSetting("batch_size", $"{config.BatchSize}: smaller than the {communicator.Size} processes of the job (each needs at least one image per step)");
            _parallel = new DataParallel(communicator, device);
        }
        Config = config;
        RunDir = runDir;
        Data = data;
        _ownsData = ownsData;
        Device = device;
        if (config.Model is UNetConfig unet && modelFactory is null) CheckDataFitsModel(unet, data);
        var create = RunModels.Resolve(config, modelFactory, runDir);

        torch.manual_seed(config.Seed);
        Model = create();
        EmaModel = create();
        if (ReferenceEquals(Model, EmaModel))
        {
            Model.Dispose();
            throw new DdpmException("the model factory returned the same module twice: it must build a new one on each call");
        }
        Model.to(device);
        EmaModel.to(device);
        EmaModel.eval();
        foreach (var p in EmaModel.parameters()) p.requires_grad = false;
        _ema = new Ema(Model, EmaModel, config.EmaDecay, config.EmaWarmup, config.EmaPower, config.EmaInvGamma);
        _ema.CopyFromModel();
        _optimizer = optim.Adam(Model.parameters(), config.LearningRate, config.AdamBeta1, config.AdamBeta2, config.AdamEps);
        _adam = new AdamUpdate(_optimizer);
        _learningRates = LearningRateSchedule.Of(config);
        Diffusion = DiffusionFactory.Diffusion(config);
        _batches = new BatchSampler(data.Count, config.BatchSize, config.Seed);
        _timesteps = TimestepSamplers.For(config);
        _parameters = Model.parameters().ToArray();
        _images = DataOnDevice(data.Images, device);
        _guard = new DivergenceGuard(device);
        _windowLossSum = zeros(1, dtype: ScalarType.Float64, device: device);
        _lastLoss = zeros(1, dtype: ScalarType.Float32, device: device);
        _lastGradNorm = zeros(1, dtype: ScalarType.Float32, device: device);
    }

    /// <summary>The images to gather batches from: the data set itself on the CPU, a copy on another device when it fits.</summary>
    private static Tensor DataOnDevice(Tensor images, Device device)
    {
        if (device.type == DeviceType.CPU || images.NumberOfElements * images.ElementSize > DeviceDataLimitBytes) return images;
        return images.to(device);
    }

    /// <summary>Whether batches are gathered on the model's device (false on the CPU and for data sets over <see cref="DeviceDataLimitBytes"/>).</summary>
    public bool DataHeldOnDevice => !ReferenceEquals(_images, Data.Images);

    /// <summary>Fills in what the configuration leaves open (the network from the preset, the data's size).</summary>
    public static TrainConfig Resolve(TrainConfig config, ImageDataset data) => Resolve(config, data, customModel: false);

    /// <summary>
    /// The same; with <paramref name="customModel"/> the network comes from a factory, so the configuration's
    /// <see cref="TrainConfig.Model"/> is cleared (that is how a checkpoint tells a custom network from the U-Net).
    /// </summary>
    public static TrainConfig Resolve(TrainConfig config, ImageDataset data, bool customModel)
    {
        var c = config.Clone();
        c.ImageSize = data.Height;
        // The decay's span is fixed when the run starts, so that resuming with more steps does not re-plan it.
        if (c.LrDecay != LearningRateDecay.None) c.LrDecaySteps ??= c.Steps;
        c.Channels = data.Channels;
        if (customModel)
        {
            c.Model = null;
            c.Validate();
            CheckBatchFitsData(c.BatchSize, data);
            return c;
        }
        c.Model ??= Presets.Get(c.Preset, data.Height, data.Channels);
        if (c.Dropout is double d) c.Model.Dropout = d;
        DiffusionFactory.ConfigureOutputChannels(c.Model, c);
        c.Validate();
        CheckDataFitsModel(c.Model, data);
        CheckBatchFitsData(c.BatchSize, data);
        return c;
    }

    private static void CheckDataFitsModel(UNetConfig model, ImageDataset data)
    {
        if (model.InChannels != data.Channels || model.ImageSize != data.Height || data.Height != data.Width)
            throw new DdpmException(
                $"the model expects {model.InChannels}x{model.ImageSize}x{model.ImageSize} images but the data ({data.Source}) has {data.Channels}x{data.Height}x{data.Width}; set image_size and channels");
    }

    /// <summary>
    /// Whether <paramref name="runDir"/> holds a run already: a complete checkpoint. A folder whose run died before its
    /// first checkpoint holds none, and <see cref="Start"/> starts it afresh.
    /// </summary>
    public static bool HoldsRun(string runDir) => CheckpointStore.HasCompleteCheckpoint(runDir);

    /// <summary>
    /// Starts a new run in <paramref name="runDir"/> (which must not hold a run already). <paramref name="model"/>
    /// builds the network to train instead of the configuration's U-Net: any module with the diffusion's contract
    /// (x_t (B, C, H, W) and t (B,) int64 in, (B, C, H, W) out, or (B, 2C, H, W) for a learned variance). It is called
    /// twice (the network and its EMA) after seeding the global generator with the run's seed, and again with the
    /// same factory to resume or load the run's checkpoints, which hold its state dict. With
    /// <see cref="TrainConfig.InitFrom"/> the U-Net and its EMA start from that checkpoint's weights (see
    /// <see cref="FineTuning"/>) with a new optimizer; the configuration's network must be the checkpoint's (taken from
    /// it when <see cref="TrainConfig.Model"/> is null), while its diffusion settings are the caller's
    /// (<see cref="FineTuning.ApplySettings(TrainConfig)"/> takes them from the checkpoint).
    /// </summary>
    public static Trainer Start(TrainConfig config, string runDir, ImageDataset? data = null, ModelFactory? model = null) =>
        StartCore(config, runDir, data, model, communicator: null);

    private static Trainer StartCore(TrainConfig config, string runDir, ImageDataset? data, ModelFactory? model, ICommunicator? communicator)
    {
        bool writer = communicator is null || communicator.Rank == 0;
        if (string.IsNullOrWhiteSpace(runDir)) throw new DdpmException("the run folder's path is empty");
        config.Validate();
        if (CheckpointStore.HasCompleteCheckpoint(runDir)) throw AlreadyHoldsARun(runDir);
        if (config.InitFrom is not null && model is not null)
            throw DdpmException.ForSetting(FineTuning.Setting, $"{config.InitFrom}: pretrained weights load into the configuration's U-Net, not a custom network");
        // The pretrained checkpoint is opened before the data is read, so a wrong path is refused at once.
        using var pretrained = config.InitFrom is null ? null : FineTuning.Open(config.InitFrom);
        if (pretrained is not null && config.Model is null)
        {
            config = config.Clone();
            config.Model = pretrained.Model.Clone();
        }
        bool owns = data is null;
        data ??= DatasetLoader.Load(config.Data, config.ImageSize, config.Channels, config.MaxImages);
        Trainer? trainer = null;
        RunLock? runLock = null;
        try
        {
            // Everything that can refuse the settings (data, network, diffusion, device, pretrained weights) runs
            // before the folder exists.
            var resolved = Resolve(config, data, customModel: model is not null);
            var device = TorchRuntime.ResolveDevice(resolved.Device);
            CheckBatchFitsMemory(resolved, device, model);
            trainer = new Trainer(resolved, runDir, data, owns, device, model, communicator);
            if (pretrained is not null) trainer.LoadPretrained(pretrained);
            if (!writer) return trainer; // rank 0 alone writes the run folder
            RunFolder.Create(runDir);
            runLock = RunLock.Acquire(runDir);
            if (CheckpointStore.HasCompleteCheckpoint(runDir)) throw AlreadyHoldsARun(runDir);
            // A folder with a configuration but no complete checkpoint is a run that died before its first one: start
            // it afresh (its metrics lines describe steps that no checkpoint holds).
            trainer.StartedOverAnUnfinishedRun = File.Exists(Path.Combine(runDir, ConfigFile));
            if (trainer.StartedOverAnUnfinishedRun) MetricsLog.TruncateAfter(runDir, -1);
            RunFolder.ProbeWritable(Path.Combine(runDir, CheckpointStore.Folder));
            AtomicFile.WriteAllText(Path.Combine(runDir, ConfigFile), resolved.ToJson());
            trainer._runLock = runLock;
            return trainer;
        }
        catch
        {
            runLock?.Dispose();
            if (trainer is not null) trainer.Dispose();
            else if (owns) data.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Fine-tuning: the network and its EMA both start from <paramref name="pretrained"/>'s weights (the network's
    /// layout must be the checkpoint's; only the dropout may differ). The optimizer was made with the network and has
    /// taken no step, so its state is new: step 0, no moments, the learning-rate warm-up from its start.
    /// </summary>
    private void LoadPretrained(PretrainedModel pretrained)
    {
        FineTuning.CheckSameNetwork(pretrained.Model, (UNetConfig)Config.Model!, pretrained.Source);
        pretrained.LoadInto(Model); // every name and shape checked; a misfit is refused naming the tensors
        _ema.CopyFromModel();
        InitializedFrom = new PretrainedOrigin(pretrained.Format, pretrained.Source, pretrained.WeightsFile, pretrained.Diffusion, pretrained.Step);
    }

    /// <summary>What <see cref="Start"/> loaded the weights from (<see cref="TrainConfig.InitFrom"/>); null for a run from scratch and for a resumed run.</summary>
    public PretrainedOrigin? InitializedFrom { get; private set; }

    private static DdpmException AlreadyHoldsARun(string runDir) =>
        new($"{runDir} already holds a run: resume it, or choose another run folder");

    /// <summary>Whether <see cref="Start"/> found a run that had died before its first checkpoint and started afresh over it.</summary>
    public bool StartedOverAnUnfinishedRun { get; private set; }

    /// <summary>How many torn lines (cut by a crash or a full disk) <see cref="Resume"/> dropped from metrics.jsonl.</summary>
    public int TornMetricsLinesDropped { get; private set; }

    private RunLock? _runLock;

    /// <summary>
    /// Continues the run in <paramref name="runDir"/> from its latest checkpoint. <paramref name="adjust"/> may change
    /// settings that do not alter the numerics of the steps already taken (more steps, logging, device). A run of a
    /// custom network needs the <paramref name="model"/> factory it was started with.
    /// </summary>
    public static Trainer Resume(string runDir, ImageDataset? data = null, Action<TrainConfig>? adjust = null, ModelFactory? model = null) =>
        ResumeCore(runDir, data, adjust, model, communicator: null);

    private static Trainer ResumeCore(string runDir, ImageDataset? data, Action<TrainConfig>? adjust, ModelFactory? model, ICommunicator? communicator)
    {
        bool writer = communicator is null || communicator.Rank == 0;
        if (File.Exists(Path.Combine(runDir, CheckpointStore.StateFile)))
            throw new DdpmException($"{runDir} is a checkpoint, not a run folder: resume the run that holds it ({RunFolder.OfCheckpoint(runDir)})");
        if (!Directory.Exists(runDir)) throw new DdpmException($"run folder not found: {runDir}");
        var runLock = writer ? RunLock.Acquire(runDir) : null;
        bool owns = data is null;
        Trainer? trainer = null;
        try
        {
            var dir = CheckpointStore.Resolve(runDir);
            var state = CheckpointStore.ReadState(dir);
            var config = state.Config.Clone();
            if (config.Model is null && model is null) throw new DdpmException(RunModels.CustomModelMissing(dir));
            adjust?.Invoke(config);
            config.Validate();
            if (config.Steps < state.Step)
                throw DdpmException.ForSetting("steps", $"{config.Steps}: the run already did {state.Step} steps");
            data ??= DatasetLoader.Load(config.Data, config.ImageSize, config.Channels, config.MaxImages);
            CheckBatchFitsData(config.BatchSize, data);
            var device = TorchRuntime.ResolveDevice(config.Device);
            CheckBatchFitsMemory(config, device, model);
            trainer = new Trainer(config, runDir, data, owns, device, model, communicator);
            CheckpointStore.LoadWeights(trainer.Model, Path.Combine(dir, CheckpointStore.ModelFile));
            CheckpointStore.LoadWeights(trainer.EmaModel, Path.Combine(dir, CheckpointStore.EmaFile));
            CheckpointStore.LoadOptimizer(trainer._optimizer, Path.Combine(dir, CheckpointStore.OptimizerFile));
            trainer.Step = state.Step;
            trainer._guard.LastCheckpointStep = state.Step;
            if (trainer._timesteps is LossAwareTimestepSampler lossAware && state.TimestepSampler is not null)
                lossAware.SetState(state.TimestepSampler, Path.Combine(dir, CheckpointStore.StateFile));
            if (!writer) return trainer; // rank 0 alone writes the run folder
            RunFolder.ProbeWritable(Path.Combine(runDir, CheckpointStore.Folder));
            trainer.TornMetricsLinesDropped = MetricsLog.TruncateAfter(runDir, state.Step);
            trainer._trainSecondsBefore = MetricsLog.LastTrainSeconds(runDir);
            AtomicFile.WriteAllText(Path.Combine(runDir, ConfigFile), config.ToJson());
            trainer._runLock = runLock;
            return trainer;
        }
        catch
        {
            runLock?.Dispose();
            if (trainer is not null) trainer.Dispose();
            else if (owns) data?.Dispose();
            throw;
        }
    }

    /// <summary>A batch larger than the data set would repeat images within one batch; it is refused.</summary>
    private static void CheckBatchFitsData(int batchSize, ImageDataset data)
    {
        if (batchSize > data.Count)
            throw DdpmException.ForSetting("batch_size", $"{batchSize} is larger than the data set ({data.Count} images from {data.Source}): lower it or add images");
    }

    /// <summary>
    /// A batch whose estimated memory (<see cref="TrainingMemory"/>) exceeds what the machine has available is refused
    /// before anything is allocated; checked for the U-Net on the CPU (a custom network's size is not known beforehand).
    /// </summary>
    private static void CheckBatchFitsMemory(TrainConfig config, Device device, ModelFactory? model)
    {
        if (device.type == DeviceType.CPU && model is null && config.Model is UNetConfig unet)
            TrainingMemory.Check(unet, config.BatchSize, TrainingMemory.AvailableBytes());
    }

    /// <summary>
    /// One update of Algorithm 1, read back at once: see <see cref="Advance"/>; throws if the update diverged.
    /// </summary>
    public StepStats TrainStep()
    {
        Advance();
        var w = ReadWindow();
        return new StepStats(w.LastStep, w.LastLoss, w.GradNorm, w.LearningRate);
    }

    /// <summary>
    /// One update of Algorithm 1: x0 from the data, t from the timestep sampler (U{0..T-1} by default), eps ~ N(0, I),
    /// descend on the diffusion's loss (||eps - eps_theta||^2 by default), weighted per example by the sampler.
    /// Nothing is read back from the device: the loss and the gradient norm stay there until <see cref="ReadWindow"/>,
    /// and a non-finite loss or norm is remembered there (see <see cref="DivergenceGuard"/>).
    /// </summary>
    public void Advance()
    {
        using var scope = NewDisposeScope();
        long step = Step;
        // Dropout draws from the global generator: seed it per step so resuming reproduces it (each process of a
        // data-parallel job with its own stream, so that shards do not share masks).
        torch.manual_seed(StepRandom.SeedFor(Config.Seed, step, DropoutStream));
        using var gen = new Generator((ulong)StepRandom.SeedFor(Config.Seed, step, 1), CPU);

        // The batch is gathered where the images are; flips and noise are drawn on the CPU generator, so a seed
        // means the same batches on every device (the noise is copied: 4 bytes per pixel per step).
        var x0 = _batches.GetBatch(_images, step);
        if (Config.RandomFlip) x0 = Augment.RandomHorizontalFlip(x0, gen);
        var (t, weights) = _timesteps.Sample((int)x0.shape[0], gen);
        var noise = randn(x0.shape, generator: gen);

        Model.train();
        _optimizer.zero_grad();
        Tensor loss;
        if (_parallel is null)
        {
            x0 = x0.to(Device);
            t = t.to(Device);
            noise = noise.to(Device);
            var losses = Diffusion.TrainingLosses(Model, x0, t, noise);
            loss = weights is null ? losses.mean() : (losses * weights.to(Device)).mean();
            _timesteps.Update(t, losses.detach());
            loss.backward();
        }
        else
        {
            // This process's rows of the global batch; the gradients summed over the processes (see DataParallel).
            loss = ShardLossAndGradients(x0, t, weights, noise);
        }
        double maxNorm = Config.GradClip > 0 ? Config.GradClip : double.PositiveInfinity;
        var gradNorm = GradientClipping.ClipGlobalNorm(_parameters, maxNorm);
        _guard.Observe(step, loss, gradNorm);
        double lr = _learningRates.At(step);
        foreach (var group in _optimizer.ParamGroups) group.LearningRate = lr;
        _adam.Apply();
        _ema.Update(step);

        using (no_grad())
        {
            var detached = loss.detach();
            _windowLossSum.add_(detached.to(ScalarType.Float64), HeldScalars.Int1); // the alpha add_ would make, held (HeldScalars)
            _lastLoss.copy_(detached);
            if (gradNorm is not null) _lastGradNorm.copy_(gradNorm);
            else _lastGradNorm.zero_();
        }
        _windowSteps++;
        _lastLearningRate = lr;
        Step = step + 1;
    }

    /// <summary>
    /// Reads back (one device synchronisation) what the updates since the previous call did, starts a new window,
    /// and throws a one-line error if any update since the start of training had a non-finite loss or gradient norm.
    /// </summary>
    public StepWindow ReadWindow()
    {
        _guard.ThrowIfDiverged();
        if (_windowSteps == 0) throw new InvalidOperationException("no update since the last read-back");
        var window = new StepWindow(Step - 1, _windowSteps, _windowLossSum.item<double>() / _windowSteps,
            _lastLoss.item<float>(), _lastGradNorm.item<float>(), _lastLearningRate);
        _windowLossSum.zero_();
        _windowSteps = 0;
        return window;
    }

    /// <summary>Writes a checkpoint of the current state and returns its folder.</summary>
    public string SaveCheckpoint()
    {
        _guard.ThrowIfDiverged();
        var state = new CheckpointState
        {
            Step = Step, Seed = Config.Seed, Config = Config,
            TimestepSampler = (_timesteps as LossAwareTimestepSampler)?.GetState(),
        };
        string saved = CheckpointStore.Save(RunDir, state, Model, EmaModel, _optimizer, Config.KeepCheckpoints);
        _guard.LastCheckpointStep = Step;
        return saved;
    }

    public void Dispose()
    {
        _adam.Dispose();
        _optimizer.Dispose();
        Model.Dispose();
        EmaModel.Dispose();
        Diffusion.Dispose();
        Evaluator?.Dispose();
        _guard.Dispose();
        _windowLossSum.Dispose();
        _lastLoss.Dispose();
        _lastGradNorm.Dispose();
        if (DataHeldOnDevice) _images.Dispose();
        if (_ownsData) Data.Dispose();
        _runLock?.Dispose();
    }
}

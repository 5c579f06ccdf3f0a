namespace Research;

/// <summary>Settings of one call to <c>Fit</c>. The defaults train 10 epochs of Adam (learning rate 1e-3)
/// on shuffled minibatches of 128.</summary>
public sealed record TrainingOptions
{
    /// <summary>Passes over the training data; must be positive.</summary>
    public int Epochs { get; init; } = 10;
    /// <summary>Examples per minibatch; must be positive. A value above the row count trains on full batches,
    /// and a row count that is not a multiple of it ends each epoch with a smaller batch.</summary>
    public int BatchSize { get; init; } = 128;
    /// <summary>The optimiser's step size; must be finite and positive.</summary>
    public double LearningRate { get; init; } = 1e-3;
    /// <summary>The stochastic gradient method.</summary>
    public Optimizer Optimizer { get; init; } = Optimizer.Adam;
    /// <summary>Seeds the minibatch order and every sample drawn while training (bit-identical results on the CPU).</summary>
    public int Seed { get; init; } = 0;
    /// <summary>L2 penalty on the parameters (the paper's N(0, I) prior on them); 0 by default.</summary>
    public double WeightDecay { get; init; } = 0.0;
    /// <summary>Held-out rows scored after every epoch when given.</summary>
    public float[,]? Validation { get; init; }
    /// <summary>Called after every finished epoch.</summary>
    public IProgress<EpochReport>? Progress { get; init; }
    /// <summary>Stops training between minibatches; <c>Fit</c> then returns the finished epochs and the model stays usable.</summary>
    public CancellationToken Cancellation { get; init; }
    /// <summary>Resample every minibatch as x ~ Bernoulli(pixel) (Burda et al.'s dynamically binarised MNIST), from the
    /// training seed, so reruns are bit-identical. The data must lie in [0, 1] (else an <see cref="ArgumentException"/>
    /// before any work); <see cref="Validation"/> is scored as given (binarise it once with <see cref="Mnist.Binarize"/>).</summary>
    public bool DynamicBinarization { get; init; } = false;
    /// <summary>With <see cref="Validation"/>: stop after this many epochs without a strictly lower validation loss,
    /// and end with the weights of the best epoch (<see cref="TrainingHistory.BestEpoch"/>), also when the epochs run out
    /// first. The history keeps every finished epoch. Without <see cref="Validation"/>, an <see cref="ArgumentException"/>.</summary>
    public int? EarlyStoppingPatience { get; init; } = null;
    /// <summary>Makes the run resumable: after every epoch, Fit writes this file atomically (a temp file, flushed to disk,
    /// renamed) with the weights, the optimiser state, the random state, the epoch and the history. When the file exists
    /// as Fit starts, Fit replaces the model's weights with the file's and resumes, and the run ends bit-identical to an
    /// uninterrupted one (on the CPU, same thread count); the history is the whole run's. The file stays: a later Fit at
    /// or past <see cref="Epochs"/> loads the final weights and returns without training, a larger Epochs extends the run.
    /// A file of another model, other data (Validation included) or other BatchSize, LearningRate, Optimizer, Seed,
    /// WeightDecay, DynamicBinarization or EarlyStoppingPatience, or a damaged one, is an <see cref="InvalidDataException"/>
    /// naming what differs, and nothing is changed. Epochs, Progress, Cancellation and TensorBoardLogDirectory do not count.</summary>
    public string? CheckpointPath { get; init; }
    /// <summary>With <see cref="CheckpointPath"/>: also write that file after every this many minibatches within an epoch
    /// (with the epoch's order, position and partial loss), so that a crash loses at most that many steps of a long epoch;
    /// the resumed run is still bit-identical to an uninterrupted one. <c>null</c> (the default) writes it after each epoch
    /// only. Each write costs the file's size in disk I/O and an fsync (docs/quickstart-csharp.md, "Long runs", gives figures). Positive;
    /// without CheckpointPath an <see cref="ArgumentException"/>. It does not have to match between the runs of a resume.</summary>
    public int? CheckpointEveryBatches { get; init; }
    /// <summary>A folder for TensorBoard (<c>tensorboard --logdir</c> it): every epoch's scalars <c>loss/train</c> and
    /// <c>loss/validation</c> and, for a VAE, <c>kl/…</c> and <c>reconstruction/…</c> (the ELBO's two terms per example,
    /// on the first 10,000 training rows and on <see cref="Validation"/>). Created if needed; each <c>Fit</c> adds one
    /// event file. <c>null</c> (the default) writes nothing.</summary>
    public string? TensorBoardLogDirectory { get; init; }
}

/// <summary>What one finished epoch measured.</summary>
/// <param name="Epoch">1-based epoch number.</param>
/// <param name="TrainLoss">Mean training loss per example over the epoch.</param>
/// <param name="ValidationLoss">Loss on <see cref="TrainingOptions.Validation"/> after the epoch, when given.</param>
/// <param name="ExamplesSeen">Training examples processed since <c>Fit</c> began.</param>
/// <param name="Elapsed">Wall-clock time since <c>Fit</c> began.</param>
public sealed record EpochReport(int Epoch, double TrainLoss, double? ValidationLoss, long ExamplesSeen, TimeSpan Elapsed);

/// <summary>One <see cref="EpochReport"/> per finished epoch of a <c>Fit</c> call, in order.</summary>
public sealed class TrainingHistory : IReadOnlyList<EpochReport>
{
    private readonly IReadOnlyList<EpochReport> _epochs;

    internal TrainingHistory(IReadOnlyList<EpochReport> epochs) => _epochs = epochs;

    /// <summary>The report of the epoch at <paramref name="index"/> (0-based).</summary>
    public EpochReport this[int index] => _epochs[index];

    /// <summary>With <see cref="TrainingOptions.Validation"/>: the epoch (1-based) of the lowest
    /// <see cref="EpochReport.ValidationLoss"/> (the first, on a tie); null without validation or epochs.</summary>
    public int? BestEpoch =>
        _epochs.Where(e => e.ValidationLoss is not null).MinBy(e => e.ValidationLoss!.Value)?.Epoch;

    /// <summary>The number of finished epochs.</summary>
    public int Count => _epochs.Count;

    /// <summary>Enumerates the reports in epoch order.</summary>
    public IEnumerator<EpochReport> GetEnumerator() => _epochs.GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

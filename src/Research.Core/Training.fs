/// Minibatch stochastic optimisation shared by every trainable model.
module Research.Core.Training

open System
open System.Diagnostics
open System.Threading
open TorchSharp

type Tensor = torch.Tensor

/// The stochastic gradient method.
type Optimizer =
    /// Adam with betas (0.9, 0.999), eps 1e-8.
    | Adam
    /// Adagrad, the AEVB paper's optimiser.
    | Adagrad

/// What one finished epoch measured.
type EpochReport =
    { /// 1-based epoch number.
      Epoch: int
      /// Mean training loss per example over the epoch's minibatches.
      TrainLoss: float
      /// Loss on the validation set after the epoch, when one was given.
      ValidationLoss: float option
      /// Training examples processed since the start of this Fit.
      ExamplesSeen: int64
      /// Wall-clock time since the start of this Fit.
      Elapsed: TimeSpan }

/// Settings of one call to fit.
type TrainingConfig =
    { /// Passes over the training data; must be positive.
      Epochs: int
      /// Examples per minibatch; must be positive. Above the row count it trains on full batches.
      BatchSize: int
      /// The optimiser's step size; finite and positive.
      LearningRate: float
      /// The stochastic gradient method.
      Optimizer: Optimizer
      /// Seeds the minibatch order and every sample drawn during training.
      Seed: int
      /// L2 penalty on the parameters (the MAP view of a Gaussian prior on them).
      WeightDecay: float
      /// Scored after every epoch when given (already on the model's device).
      Validation: Tensor option
      /// Called after every epoch.
      Progress: EpochReport -> unit
      /// Checked between minibatches; training stops cleanly and returns the finished epochs.
      Cancellation: CancellationToken
      /// Resample every minibatch as x ~ Bernoulli(pixel) with the training generator (Burda et al.'s
      /// protocol; data must be in [0, 1]). The validation set is used as given.
      DynamicBinarization: bool
      /// With Validation: stop after this many epochs without a strictly lower validation loss, and end with
      /// the weights of the best epoch (also when the epochs run out first).
      EarlyStoppingPatience: int option
      /// A folder for TensorBoard event files: each epoch's losses (and a model's own terms, such as a VAE's
      /// KL and reconstruction) as scalars, one new event file per Fit (TensorBoardLog).
      TensorBoard: string option }

/// The defaults of the C# facade: 10 epochs of Adam 1e-3 on minibatches of 128.
let defaults =
    { Epochs = 10; BatchSize = 128; LearningRate = 1e-3; Optimizer = Adam; Seed = 0; WeightDecay = 0.0
      Validation = None; Progress = ignore; Cancellation = CancellationToken.None
      DynamicBinarization = false; EarlyStoppingPatience = None; TensorBoard = None }

/// Raised when the loss becomes NaN or infinite; the model holds the last weights whose loss was finite.
/// The fields: message (what happened and what to try, also the exception's Message), epoch and batch
/// (1-based, the step whose loss was not finite).
exception DivergedException of message: string * epoch: int * batch: int
    with override this.Message = this.message

/// What the trainer needs from a model.
type ITrainable =
    /// The parameters the optimiser updates.
    abstract Parameters: Modules.Parameter list
    /// The scalar loss (mean per example) of one minibatch, `generator` driving any sampling, returned after
    /// its derivative has been added into every parameter's gradient (which the trainer zeroes first);
    /// `byAutograd` makes this from any differentiable loss.
    abstract LossAndGradients: generator: torch.Generator -> batch: Tensor -> Tensor
    /// The mean loss per example of a whole data set, without gradients.
    abstract Evaluate: data: Tensor -> float

/// LossAndGradients for a differentiable loss: the loss, then backward through libtorch's autograd.
let byAutograd (loss: torch.Generator -> Tensor -> Tensor) (generator: torch.Generator) (batch: Tensor) : Tensor =
    let l = loss generator batch
    l.backward ()
    l

/// Checks a training configuration against the data size, before any work.
let validate (config: TrainingConfig) =
    Validate.positive "Epochs" config.Epochs
    Validate.positive "BatchSize" config.BatchSize
    Validate.positiveFinite "LearningRate" config.LearningRate
    Validate.nonNegativeFinite "WeightDecay" config.WeightDecay
    match config.EarlyStoppingPatience with
    | Some patience ->
        Validate.positive "EarlyStoppingPatience" patience
        if config.Validation.IsNone then
            raise (ArgumentException("EarlyStoppingPatience needs Validation: early stopping watches the validation loss.", "EarlyStoppingPatience"))
    | None -> ()

let private makeOptimizer (config: TrainingConfig) (flat: FlatParameters.FlatParameters) : Optimisers.IStepRule =
    match config.Optimizer with
    | Adam -> Optimisers.adam flat config.LearningRate config.WeightDecay
    | Adagrad -> Optimisers.adagrad flat config.LearningRate config.WeightDecay

/// Trains `model` on the rows of `data` (already validated and on the model's device) with shuffled
/// minibatches; returns one report per finished epoch. A batch size above the row count trains on
/// full batches; a last partial batch is used as is.
let rec fit (model: ITrainable) (data: Tensor) (config: TrainingConfig) : EpochReport list =
    validate config
    fitValidated model data config

/// fit for a configuration that `validate` has passed already (model classes check it once, before any work).
and internal fitValidated (model: ITrainable) (data: Tensor) (config: TrainingConfig) : EpochReport list =
    let n = data.shape.[0]
    let batch = min (int64 config.BatchSize) n
    let generator = new torch.Generator(uint64 config.Seed, data.device)
    use _g = generator
    use flat = new FlatParameters.FlatParameters(model.Parameters)
    use optimizer = makeOptimizer config flat
    // After a Step the weights before it are flat.Previous; they are restored if the next loss is not
    // finite. Before the first Step the weights are the ones Fit was given, and they stay.
    let mutable stepped = false
    let restoreLastGood () = if stepped then flat.Flip()
    let clock = Stopwatch.StartNew()
    let history = ResizeArray<EpochReport>()
    // Early stopping: the best validation loss so far, its epoch, and a copy of its weights.
    let mutable best = (Double.PositiveInfinity, 0)
    use bestWeights = if config.EarlyStoppingPatience.IsSome then flat.Values.clone () else null
    let mutable stop = false
    let mutable seen = 0L
    let mutable epoch = 1
    while epoch <= config.Epochs && not stop && not config.Cancellation.IsCancellationRequested do
        // Summed on the host in float64 from the value read for the divergence check (no tensor ops).
        let mutable lossSum = 0.0
        let order = torch.randperm(n, generator = generator, device = data.device)
        use _o = order
        let mutable start = 0L
        let mutable b = 1
        while start < n && not config.Cancellation.IsCancellationRequested do
            use scope = torch.NewDisposeScope()
            let size = min batch (n - start)
            let rows = data.index_select(0L, order.narrow(0L, start, size))
            let x = if config.DynamicBinarization then torch.bernoulli(rows, generator) else rows
            optimizer.ZeroGrad()
            let loss = model.LossAndGradients generator x
            let value = loss.item<float32> ()
            if not (Single.IsFinite value) then
                restoreLastGood ()
                raise (DivergedException(
                    $"Training diverged: the loss is {value} at epoch {epoch}, batch {b}. The model keeps the last weights whose loss was finite; try a smaller learning rate.",
                    epoch, b))
            optimizer.Step()
            stepped <- true
            lossSum <- lossSum + float value * float size
            start <- start + size
            seen <- seen + size
            b <- b + 1
        if start >= n then
            let validation = config.Validation |> Option.map model.Evaluate
            let report =
                { Epoch = epoch; TrainLoss = lossSum / float n; ValidationLoss = validation
                  ExamplesSeen = seen; Elapsed = clock.Elapsed }
            history.Add report
            config.Progress report
            match config.EarlyStoppingPatience, validation with
            | Some patience, Some v ->
                if v < fst best then
                    best <- (v, epoch)
                    use _ = torch.no_grad ()
                    bestWeights.copy_(flat.Values) |> ignore
                elif epoch - snd best >= patience then stop <- true
            | _ -> ()
        epoch <- epoch + 1
    if not (isNull bestWeights) && snd best > 0 then
        use _ = torch.no_grad ()
        flat.Values.copy_(bestWeights) |> ignore
    List.ofSeq history

/// Evaluates `perExample` (a function of a chunk of rows returning one loss per row) over `data` in
/// chunks without gradients, and returns the mean.
let evaluateInChunks (chunk: int64) (perExample: Tensor -> Tensor) (data: Tensor) : float =
    use _ = torch.no_grad ()
    let n = data.shape.[0]
    let mutable total = 0.0
    let mutable start = 0L
    while start < n do
        use scope = torch.NewDisposeScope()
        let size = min chunk (n - start)
        total <- total + (perExample (data.narrow(0L, start, size))).sum().to_type(torch.ScalarType.Float64).item<float> ()
        start <- start + size
    total / float n

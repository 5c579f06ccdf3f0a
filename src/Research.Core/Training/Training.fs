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
      /// A file that makes the run resumable: written atomically after every epoch (weights, optimiser state,
      /// random state, epoch, history); when it exists as Fit starts, Fit resumes from it (see RunCheckpoint).
      CheckpointPath: string option
      /// With CheckpointPath: also write it after every this many minibatches within an epoch (the epoch's
      /// order, position and partial loss with it), so a crash loses at most that many steps of a long epoch.
      /// Each write costs the file's size in disk I/O and an fsync (docs/quickstart-csharp.md, "Long runs", gives figures).
      CheckpointEveryBatches: int option
      /// A folder for TensorBoard event files: each epoch's losses (and a model's own terms, such as a VAE's
      /// KL and reconstruction) as scalars, one new event file per Fit (TensorBoardLog).
      TensorBoard: string option }

/// The defaults of the C# facade: 10 epochs of Adam 1e-3 on minibatches of 128.
let defaults =
    { Epochs = 10; BatchSize = 128; LearningRate = 1e-3; Optimizer = Adam; Seed = 0; WeightDecay = 0.0
      Validation = None; Progress = ignore; Cancellation = CancellationToken.None
      DynamicBinarization = false; EarlyStoppingPatience = None; CheckpointPath = None; CheckpointEveryBatches = None
      TensorBoard = None }

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
    match config.CheckpointEveryBatches with
    | Some every ->
        Validate.positive "CheckpointEveryBatches" every
        if config.CheckpointPath.IsNone then
            raise (ArgumentException("CheckpointEveryBatches needs CheckpointPath: it says how often that file is written within an epoch.", "CheckpointEveryBatches"))
    | None -> ()

/// The optimiser `config` names over `flat`'s parameters (Fit's, and loops of their own such as Mcem.fit).
let internal makeOptimizer (config: TrainingConfig) (flat: FlatParameters.FlatParameters) : Optimisers.IStepRule =
    match config.Optimizer with
    | Adam -> Optimisers.adam flat config.LearningRate config.WeightDecay
    | Adagrad -> Optimisers.adagrad flat config.LearningRate config.WeightDecay

/// The checkpoint kind of a resumable run's file.
[<Literal>]
let RunKind = "training-run"

/// A cheap fingerprint of a data set: its shape and the SHA-256 of its float32 values.
let fingerprint (data: Tensor) : string =
    use scope = torch.NewDisposeScope()
    let values = data.``to``(torch.CPU).to_type(torch.float32).contiguous()
    let hash = Security.Cryptography.SHA256.HashData(values.bytes)
    let shape = String.Join("x", data.shape)
    $"{shape}:{Convert.ToHexString(hash).Substring(0, 32)}"

/// What must match for a checkpoint to be resumed: the run-shaping options and the data (a model adds its own
/// architecture). Epochs, Progress, Cancellation and TensorBoard do not count.
let runIdentity (config: TrainingConfig) (data: Tensor) : (string * string) list =
    let inv = Globalization.CultureInfo.InvariantCulture
    [ "training.BatchSize", string config.BatchSize
      "training.LearningRate", config.LearningRate.ToString("R", inv)
      "training.Optimizer", (match config.Optimizer with Adam -> "adam" | Adagrad -> "adagrad")
      "training.Seed", string config.Seed
      "training.WeightDecay", config.WeightDecay.ToString("R", inv)
      "training.DynamicBinarization", string config.DynamicBinarization
      "training.EarlyStoppingPatience", (match config.EarlyStoppingPatience with Some p -> string p | None -> "")
      "data", fingerprint data
      "validation", (match config.Validation with Some v -> fingerprint v | None -> "") ]

let private inv = Globalization.CultureInfo.InvariantCulture

let private historyText (history: EpochReport seq) =
    String.Join(";", history |> Seq.map (fun r ->
        let v = match r.ValidationLoss with Some v -> v.ToString("R", inv) | None -> ""
        let t = r.TrainLoss.ToString("R", inv)
        $"{r.Epoch},{t},{v},{r.ExamplesSeen},{r.Elapsed.Ticks}"))

let private parseHistory (path: string) (text: string) =
    let bad () = raise (IO.InvalidDataException($"The run checkpoint '{path}' has a damaged history."))
    if text = "" then []
    else
        [ for entry in text.Split ';' do
            match entry.Split ',' with
            | [| e; t; v; seen; ticks |] ->
                let num (s: string) = match Double.TryParse(s, Globalization.NumberStyles.Float, inv) with | true, x -> x | _ -> bad ()
                let whole (s: string) = match Int64.TryParse(s, Globalization.NumberStyles.Integer, inv) with | true, x -> x | _ -> bad ()
                yield { Epoch = int (whole e); TrainLoss = num t; ValidationLoss = (if v = "" then None else Some(num v))
                        ExamplesSeen = whole seen; Elapsed = TimeSpan(whole ticks) }
            | _ -> bad () ]

/// Trains `model` on the rows of `data` (already validated and on the model's device) with shuffled
/// minibatches; returns one report per finished epoch. A batch size above the row count trains on
/// full batches; a last partial batch is used as is.
let rec fit (model: ITrainable) (data: Tensor) (config: TrainingConfig) : EpochReport list =
    validate config
    fitValidated model data config (fun () -> runIdentity config data)

/// fit for a configuration that `validate` has passed already (model classes check it once, before any work);
/// `runIdentity` gives what a run checkpoint must match (Training.runIdentity, plus the model's architecture),
/// computed only when there is a checkpoint (it hashes the data).
and internal fitValidated (model: ITrainable) (data: Tensor) (config: TrainingConfig) (runIdentity: unit -> (string * string) list) : EpochReport list =
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
    let mutable elapsedBefore = TimeSpan.Zero
    // A checkpoint written within an epoch: that epoch's order, the next row, the next batch's number and
    // the loss summed so far; the epoch goes on from there.
    let mutable within : (Tensor * int64 * int * float) option = None
    let identity = if config.CheckpointPath.IsSome then runIdentity () else []
    // Resuming: everything is checked before anything is changed, then the state the file was written in (the
    // end of an epoch, or a minibatch within one) is restored, so the run continues exactly as the
    // uninterrupted one would have.
    match config.CheckpointPath with
    | Some path when IO.File.Exists path ->
        let cp = Checkpoint.load path RunKind data.device
        try
            let option key = cp.Options |> List.tryFind (fst >> (=) key) |> Option.map snd
            for key, mine in identity do
                match option key with
                | Some theirs when theirs = mine -> ()
                | Some theirs ->
                    let what = if key.StartsWith "training." then "training option " + key.Substring 9 elif key.StartsWith "model." then "model option " + key.Substring 6 else key
                    raise (IO.InvalidDataException(
                        $"The run checkpoint '{path}' belongs to another run: its {what} is '{theirs}', this Fit's is '{mine}'. Nothing was changed; delete the file or use another CheckpointPath."))
                | None -> raise (IO.InvalidDataException($"The run checkpoint '{path}' lacks '{key}'; it is damaged or of another version."))
            let tensor name =
                match cp.Tensors |> List.tryFind (fst >> (=) name) with
                | Some(_, t) -> t
                | None -> raise (IO.InvalidDataException($"The run checkpoint '{path}' lacks the tensor '{name}'."))
            let state = optimizer.State
            let checkShape (name: string) (t: Tensor) (like: Tensor) =
                if t.shape <> like.shape || t.dtype <> like.dtype then
                    raise (IO.InvalidDataException($"The run checkpoint '{path}' holds '{name}' of shape %A{t.shape}, but this model needs %A{like.shape}."))
            checkShape "weights" (tensor "weights") flat.Values
            state |> List.iteri (fun i s -> checkShape $"optimizer.{i}" (tensor $"optimizer.{i}") s)
            let text key = match option key with Some v -> v | None -> raise (IO.InvalidDataException($"The run checkpoint '{path}' lacks '{key}'."))
            let restored = parseHistory path (text "run.history")
            let generatorState = try Convert.FromBase64String(text "run.generator") with :? FormatException -> raise (IO.InvalidDataException($"The run checkpoint '{path}' has a damaged random state."))
            let steps = int (text "run.steps")
            let bestLoss = Double.Parse(text "run.bestLoss", inv)
            let bestEpoch = int (text "run.bestEpoch")
            let damagedPosition () = raise (IO.InvalidDataException($"The run checkpoint '{path}' has a damaged position within its epoch."))
            let position =
                match option "run.position" with
                | None -> None
                | Some text ->
                    let order = tensor "run.order"
                    match text.Split ',' with
                    | [| start; batchNo; examples; loss; ticks |] ->
                        let parsed =
                            try Some(int64 start, int batchNo, int64 examples, Double.Parse(loss, inv), TimeSpan(int64 ticks))
                            with :? FormatException | :? OverflowException -> None
                        match parsed with
                        | Some((st, bn, _, _, _) as p) when st > 0L && st < n && bn > 1 && order.shape = [| n |] && order.dtype = torch.float64 -> Some(p, order)
                        | _ -> damagedPosition ()
                    | _ -> damagedPosition ()
            // All checked: restore.
            use _ = torch.no_grad ()
            flat.Values.copy_(tensor "weights") |> ignore
            state |> List.iteri (fun i s -> s.copy_(tensor $"optimizer.{i}") |> ignore)
            optimizer.StepCount <- steps
            stepped <- steps > 0 || text "run.stepped" = "true"
            use g = torch.tensor(generatorState, dtype = torch.uint8)
            generator.set_state g
            if not (isNull bestWeights) then bestWeights.copy_(tensor "bestWeights") |> ignore
            best <- (bestLoss, bestEpoch)
            stop <- text "run.stopped" = "true"
            history.AddRange restored
            match List.tryLast restored with
            | Some last ->
                epoch <- last.Epoch + 1
                seen <- last.ExamplesSeen
                elapsedBefore <- last.Elapsed
            | None -> ()
            match position with
            | Some((start, batchNo, examples, loss, elapsed), order) ->
                within <- Some(order.to_type(torch.int64), start, batchNo, loss)
                seen <- examples
                elapsedBefore <- elapsed
            | None -> ()
        finally
            for _, t in cp.Tensors do t.Dispose()
    | _ -> ()
    // `position`: where within an epoch (its order, next row, next batch, loss so far), or None at its end.
    let saveCheckpoint (position: (Tensor * int64 * int * float) option) =
        match config.CheckpointPath with
        | None -> ()
        | Some path ->
            use scope = torch.NewDisposeScope()
            let bytes = generator.get_state().``to``(torch.CPU).data<byte>().ToArray()
            let withinOptions, withinTensors =
                match position with
                | Some(order, start, batchNo, loss) ->
                    let ticks = (elapsedBefore + clock.Elapsed).Ticks
                    let text = String.Join(",", string start, string batchNo, string seen, loss.ToString("R", inv), string ticks)
                    // A checkpoint holds float tensors; row numbers are exact in float64 below 2^53.
                    [ "run.position", text ], [ "run.order", order.to_type(torch.float64) ]
                | None -> [], []
            Checkpoint.save path
                { Kind = RunKind
                  Options =
                    identity
                    @ withinOptions
                    @ [ "run.history", historyText history
                        "run.generator", Convert.ToBase64String bytes
                        "run.steps", string optimizer.StepCount
                        "run.stepped", (if stepped then "true" else "false")
                        "run.bestLoss", (fst best).ToString("R", inv)
                        "run.bestEpoch", string (snd best)
                        "run.stopped", (if stop then "true" else "false") ]
                  Tensors =
                    [ yield "weights", flat.Values
                      for i, s in List.indexed optimizer.State -> $"optimizer.{i}", s
                      if not (isNull bestWeights) then yield "bestWeights", bestWeights
                      yield! withinTensors ] }
    while epoch <= config.Epochs && not stop && not config.Cancellation.IsCancellationRequested do
        // Summed on the host in float64 from the value read for the divergence check (no tensor ops).
        let order, resumeAt, resumeBatch, resumeLoss =
            match within with
            | Some(order, start, batchNo, loss) ->
                within <- None
                order, start, batchNo, loss
            | None -> torch.randperm(n, generator = generator, device = data.device), 0L, 1, 0.0
        use _o = order
        let mutable lossSum = resumeLoss
        let mutable start = resumeAt
        let mutable b = resumeBatch
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
            match config.CheckpointEveryBatches with
            | Some every when (b - 1) % every = 0 && start < n -> saveCheckpoint (Some(order, start, b, lossSum))
            | _ -> ()
        if start >= n then
            let validation = config.Validation |> Option.map model.Evaluate
            let report =
                { Epoch = epoch; TrainLoss = lossSum / float n; ValidationLoss = validation
                  ExamplesSeen = seen; Elapsed = elapsedBefore + clock.Elapsed }
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
            saveCheckpoint None
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

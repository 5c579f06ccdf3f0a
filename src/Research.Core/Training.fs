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
      Cancellation: CancellationToken }

/// The defaults of the C# facade: 10 epochs of Adam 1e-3 on minibatches of 128.
let defaults =
    { Epochs = 10; BatchSize = 128; LearningRate = 1e-3; Optimizer = Adam; Seed = 0; WeightDecay = 0.0
      Validation = None; Progress = ignore; Cancellation = CancellationToken.None }

/// Raised when the loss becomes NaN or infinite; the model holds the last weights whose loss was finite.
/// The fields: message (what happened and what to try, also the exception's Message), epoch and batch
/// (1-based, the step whose loss was not finite).
exception DivergedException of message: string * epoch: int * batch: int
    with override this.Message = this.message

/// What the trainer needs from a model.
type ITrainable =
    /// The parameters the optimiser updates.
    abstract Parameters: Modules.Parameter list
    /// The scalar loss (mean per example) of one minibatch, differentiable; `generator` drives any sampling.
    abstract Loss: generator: torch.Generator -> batch: Tensor -> Tensor
    /// The mean loss per example of a whole data set, without gradients.
    abstract Evaluate: data: Tensor -> float

/// Checks a training configuration against the data size, before any work.
let validate (config: TrainingConfig) =
    Validate.positive "Epochs" config.Epochs
    Validate.positive "BatchSize" config.BatchSize
    Validate.positiveFinite "LearningRate" config.LearningRate
    Validate.nonNegativeFinite "WeightDecay" config.WeightDecay

/// One optimiser as the trainer drives it.
type private StepRule =
    inherit IDisposable
    abstract ZeroGrad: unit -> unit
    abstract Step: unit -> unit

/// Adam exactly as TorchSharp's torch.optim.Adam computes it (PyTorch's update, β = (0.9, 0.999), ε = 1e-8,
/// the L2 penalty added to the gradient), bit for bit, but with its constants made into native Scalars once
/// and every temporary freed at once. TorchSharp's Adam turns doubles into Scalars on each call and leaves
/// them to the finalizer; interleaved with the parameter-sized temporaries it frees, they keep glibc from
/// reusing its heap, and the process grew by about one parameter set per step (1.3 GB per MNIST epoch for
/// the default VAE) until a garbage collection happened to run.
type private CachedAdam(parameters: Modules.Parameter list, lr: float, weightDecay: float) =
    let beta1, beta2, eps = 0.9, 0.999, 1e-8
    let state =
        [| for p in parameters ->
            p, torch.zeros_like(p).DetachFromDisposeScope(), torch.zeros_like(p).DetachFromDisposeScope(), ref 0 |]
    let beta1S, oneMinusBeta1 = beta1.ToScalar(), (1.0 - beta1).ToScalar()
    let beta2S, oneMinusBeta2 = beta2.ToScalar(), (1.0 - beta2).ToScalar()
    let epsS, decayS = eps.ToScalar(), weightDecay.ToScalar()
    interface StepRule with
        member _.ZeroGrad() =
            for p, _, _, _ in state do
                use g = p.grad
                if not (isNull g) then g.zero_() |> ignore
        member _.Step() =
            use _ = torch.no_grad ()
            for p, m, v, step in state do
                use grad = p.grad
                if not (isNull grad) then
                    step.Value <- step.Value + 1
                    let bc1 = 1.0 - Math.Pow(beta1, float step.Value)
                    let bc2 = 1.0 - Math.Pow(beta2, float step.Value)
                    use g = if weightDecay <> 0.0 then grad.add(p, alpha = decayS) else grad.alias ()
                    m.mul_(beta1S).add_(g, alpha = oneMinusBeta1) |> ignore
                    v.mul_(beta2S).addcmul_(g, g, value = oneMinusBeta2) |> ignore
                    use rootBc2 = (Math.Sqrt bc2).ToScalar()
                    use stepSize = (-(lr / bc1)).ToScalar()
                    use denom = v.sqrt ()
                    denom.div_(rootBc2).add_(epsS) |> ignore
                    p.addcdiv_(m, denom, value = stepSize) |> ignore
        member _.Dispose() =
            for _, m, v, _ in state do
                m.Dispose()
                v.Dispose()
            for s in [ beta1S; oneMinusBeta1; beta2S; oneMinusBeta2; epsS; decayS ] do s.Dispose()

/// TorchSharp's own optimiser (Adagrad).
type private TorchStepRule(optimizer: torch.optim.Optimizer) =
    interface StepRule with
        member _.ZeroGrad() = optimizer.zero_grad ()
        member _.Step() = optimizer.step () |> ignore
        member _.Dispose() = optimizer.Dispose()

let private makeOptimizer (config: TrainingConfig) (parameters: Modules.Parameter list) : StepRule =
    match config.Optimizer with
    | Adam -> new CachedAdam(parameters, config.LearningRate, config.WeightDecay)
    | Adagrad ->
        new TorchStepRule(torch.optim.Adagrad(parameters, lr = config.LearningRate, weight_decay = config.WeightDecay))

/// Trains `model` on the rows of `data` (already validated and on the model's device) with shuffled
/// minibatches; returns one report per finished epoch. A batch size above the row count trains on
/// full batches; a last partial batch is used as is.
let fit (model: ITrainable) (data: Tensor) (config: TrainingConfig) : EpochReport list =
    validate config
    let n = data.shape.[0]
    let batch = min (int64 config.BatchSize) n
    let generator = new torch.Generator(uint64 config.Seed, data.device)
    use _g = generator
    let parameters = model.Parameters
    use optimizer = makeOptimizer config parameters
    // The weights before the latest step, restored if the next loss is not finite.
    let lastGood =
        parameters |> List.map (fun p ->
            use view = p.detach ()
            view.clone ())
    let restoreLastGood () =
        use _ = torch.no_grad ()
        List.iter2 (fun (p: Modules.Parameter) (s: Tensor) -> p.copy_(s) |> ignore) parameters lastGood
    let clock = Stopwatch.StartNew()
    let history = ResizeArray<EpochReport>()
    let mutable seen = 0L
    try
        let mutable epoch = 1
        while epoch <= config.Epochs && not config.Cancellation.IsCancellationRequested do
            use lossSum = torch.zeros(1L, dtype = torch.ScalarType.Float64, device = data.device)
            let order = torch.randperm(n, generator = generator, device = data.device)
            use _o = order
            let mutable start = 0L
            let mutable b = 1
            while start < n && not config.Cancellation.IsCancellationRequested do
                use scope = torch.NewDisposeScope()
                let size = min batch (n - start)
                let x = data.index_select(0L, order.narrow(0L, start, size))
                let loss = model.Loss generator x
                let value = loss.item<float32> ()
                if not (Single.IsFinite value) then
                    restoreLastGood ()
                    raise (DivergedException(
                        $"Training diverged: the loss is {value} at epoch {epoch}, batch {b}. The model keeps the last weights whose loss was finite; try a smaller learning rate.",
                        epoch, b))
                do
                    use _ = torch.no_grad ()
                    List.iter2 (fun (s: Tensor) (p: Modules.Parameter) -> s.copy_(p) |> ignore) lastGood parameters
                optimizer.ZeroGrad()
                loss.backward ()
                optimizer.Step()
                lossSum.add_(loss.detach().to_type(torch.ScalarType.Float64) * float size) |> ignore
                start <- start + size
                seen <- seen + size
                b <- b + 1
            if start >= n then
                let validation = config.Validation |> Option.map model.Evaluate
                let report =
                    { Epoch = epoch; TrainLoss = lossSum.item<float> () / float n; ValidationLoss = validation
                      ExamplesSeen = seen; Elapsed = clock.Elapsed }
                history.Add report
                config.Progress report
            epoch <- epoch + 1
    finally
        lastGood |> List.iter (fun t -> t.Dispose())
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

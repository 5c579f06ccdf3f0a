/// Monte Carlo EM, the AEVB paper's second baseline (Kingma & Welling 2013, §5 and Figure 3): the decoder
/// p_θ(x|z) of a VAE trained without an encoder. For each minibatch, the E-step samples the posterior
/// p_θ(z|x) by HMC (10 leapfrog steps, the step size adapted towards 90% acceptance), and the M-step takes
/// 5 weight updates of the decoder on log p_θ(x, z) = log p(z) + log p_θ(x|z) at those samples.
///
/// The chains are persistent, one per training example: each example's z starts from the prior N(0, I)
/// and is carried from one visit to the next, so that its chain keeps converging as θ changes instead of
/// starting afresh from the prior (which a single HMC transition could not bring to the posterior). The
/// encoder is not used at all (in particular not to start the chains: MCEM does not train it, so it would
/// only inject the random initial network's guess) and is left unchanged. One step size serves every chain;
/// it is adapted after each E-step on the minibatch's mean acceptance, since the posterior changes with θ.
module Research.Core.Mcem

open System
open System.Diagnostics
open TorchSharp
open Research.Core.Interop
open Research.Core.Scalars.Operators

/// The settings of MCEM. See defaults.
type Config =
    { /// Leapfrog steps per HMC transition.
      LeapfrogSteps: int
      /// HMC transitions of a minibatch's chains in each E-step.
      Transitions: int
      /// The step size the chains start with.
      InitialStepSize: float
      /// How the shared step size follows the acceptance rate (adapted after every transition).
      Adaptation: Hmc.Adaptation
      /// Optimiser steps on the decoder per E-step.
      WeightUpdates: int
      /// The estimator of log p(x) whose negative is the validation loss (when Validation is given).
      Evaluation: MarginalLikelihood.Config }

/// The paper's: one HMC transition of 10 leapfrog steps per E-step, the step size adapted towards 90%
/// acceptance (×e^(±0.02) after each E-step, within [10⁻⁴, 0.5], from 0.05), then 5 weight updates; the
/// validation loss is −log p(x) by the Appendix D estimator with its defaults.
let defaults =
    { LeapfrogSteps = 10
      Transitions = 1
      InitialStepSize = 0.05
      Adaptation = { Hmc.defaultAdaptation with TargetAcceptance = 0.9 }
      WeightUpdates = 5
      Evaluation = MarginalLikelihood.defaults }

/// The M-step's loss: −log p(x, z) = −log p(z) − log p(x|z), mean over the examples, at latents z [S,B,D]
/// held fixed (samples of the posterior). Its gradient reaches the decoder only.
let jointLoss (model: Estimators.LatentVariableModel) (z: Tensor) (x: Tensor) : Tensor =
    -(model.LogLikelihood z x +. Gaussian.logStandardNormal z).mean()

let private validate (config: Config) =
    Validate.positive "LeapfrogSteps" config.LeapfrogSteps
    Validate.positive "Transitions" config.Transitions
    Validate.positive "WeightUpdates" config.WeightUpdates
    Validate.positiveFinite "InitialStepSize" config.InitialStepSize
    Hmc.validateAdaptation config.Adaptation
    MarginalLikelihood.validate config.Evaluation

/// Trains the decoder of `vae` by MCEM on the rows of `data`, with the optimiser, step size, minibatches,
/// weight decay, seed, epochs, cancellation, dynamic binarisation and progress of `training` (the same rules
/// as Fit's). EarlyStoppingPatience, CheckpointPath and TensorBoard are not supported (ArgumentException).
/// TrainLoss is the mean −log p(x, z) per example at the E-step's samples, before the M-step's updates; it
/// is not a bound on −log p(x). ValidationLoss is −log p(x) per example by the Appendix D estimator
/// (config.Evaluation, seeded with training.Seed), comparable with −ELBO and −IW estimates from above.
/// Every setting is checked before any work. The encoder's weights are not touched. Not to be run on a
/// model that another thread trains.
let fit (config: Config) (vae: Vae.VariationalAutoencoder) (data: Tensor) (training: Training.TrainingConfig) : Training.EpochReport list =
    validate config
    vae.CheckData("data", data)
    training.Validation |> Option.iter (fun v -> vae.CheckData("validation", v))
    Training.validate training
    for name, given in [ "EarlyStoppingPatience", training.EarlyStoppingPatience.IsSome
                         "CheckpointPath", training.CheckpointPath.IsSome
                         "TensorBoard", training.TensorBoard.IsSome ] do
        if given then raise (ArgumentException($"MCEM does not support {name}; leave it None.", name))
    if training.DynamicBinarization then Validate.unitMatrix "data" vae.Config.InputSize data
    let net = vae.Networks
    let model = vae.Model
    use xd = net.ToDevice data
    let vd = training.Validation |> Option.map net.ToDevice
    try
        let n = xd.shape.[0]
        let batch = min (int64 training.BatchSize) n
        use generator = new torch.Generator(uint64 training.Seed, xd.device)
        // The persistent chains, one per training example, started from the prior.
        use chains = torch.randn([| n; int64 vae.Config.LatentSize |], dtype = xd.dtype, device = xd.device, generator = generator)
        use stepSize = torch.tensor(config.InitialStepSize, dtype = xd.dtype, device = xd.device)
        use flat = new FlatParameters.FlatParameters(List.ofSeq (net.Decoder.parameters ()))
        use optimizer = Training.makeOptimizer training flat
        let evaluate (v: Tensor) =
            use g = new torch.Generator(uint64 training.Seed, v.device)
            let e = MarginalLikelihood.estimate g config.Evaluation vae.Config.LatentSize model v
            try -(e.LogMarginal.mean().item<float> ())
            finally for t in [ e.LogMarginal; e.EffectiveSampleSize; e.AcceptanceRate; e.StepSize ] do t.Dispose()
        // After a Step the weights before it are flat.Previous: restored if the next loss is not finite.
        let mutable stepped = false
        let clock = Stopwatch.StartNew()
        let history = ResizeArray<Training.EpochReport>()
        let mutable seen = 0L
        let mutable epoch = 1
        net.Decoder.train ()
        try
            while epoch <= training.Epochs && not training.Cancellation.IsCancellationRequested do
                let mutable lossSum = 0.0
                use order = torch.randperm(n, generator = generator, device = xd.device)
                let mutable start = 0L
                let mutable b = 1
                while start < n && not training.Cancellation.IsCancellationRequested do
                    use scope = torch.NewDisposeScope()
                    let size = min batch (n - start)
                    let index = order.narrow(0L, start, size)
                    let rows = xd.index_select(0L, index)
                    let x = if training.DynamicBinarization then torch.bernoulli(rows, generator) else rows
                    // E-step: the minibatch's chains [1,b,D] move under the current θ.
                    let z =
                        use _ = torch.no_grad ()
                        let target (z: Tensor) = Gaussian.logStandardNormal z +. model.LogLikelihood z x
                        let mutable point = Hmc.evaluate target (chains.index_select(0L, index).unsqueeze(0L))
                        for _ in 1 .. config.Transitions do
                            let t = Hmc.transition generator target stepSize config.LeapfrogSteps point
                            stepSize.copy_(Hmc.adaptStepSize config.Adaptation stepSize t.AcceptanceProbability) |> ignore
                            point <- t.Point
                        chains.index_copy_(0L, index, point.Position.squeeze(0L)) |> ignore
                        point.Position
                    // M-step: WeightUpdates steps on −log p(x, z) at the samples, z held fixed.
                    for u in 1 .. config.WeightUpdates do
                        optimizer.ZeroGrad()
                        let loss = jointLoss model z x
                        loss.backward ()
                        let value = loss.item<float32> ()
                        if not (Single.IsFinite value) then
                            if stepped then flat.Flip()
                            raise (Training.DivergedException(
                                $"MCEM diverged: the loss is {value} at epoch {epoch}, batch {b}, update {u}. The decoder keeps the last weights whose loss was finite; try a smaller learning rate.",
                                epoch, b))
                        optimizer.Step()
                        stepped <- true
                        if u = 1 then lossSum <- lossSum + float value * float size
                    start <- start + size
                    seen <- seen + size
                    b <- b + 1
                if start >= n then
                    let validation =
                        vd |> Option.map (fun v ->
                            net.Decoder.eval ()
                            try evaluate v finally net.Decoder.train ())
                    let report : Training.EpochReport =
                        { Epoch = epoch; TrainLoss = lossSum / float n; ValidationLoss = validation
                          ExamplesSeen = seen; Elapsed = clock.Elapsed }
                    history.Add report
                    training.Progress report
                epoch <- epoch + 1
        finally
            net.Decoder.eval ()
        List.ofSeq history
    finally
        vd |> Option.iter (fun t -> t.Dispose())

/// The variational autoencoder of Kingma & Welling (2013): a Gaussian encoder q(z|x), a Bernoulli or
/// Gaussian decoder p(x|z), the N(0, I) prior, trained on the SGVB estimate of the ELBO.
module Research.Core.Vae

open System
open TorchSharp
open Research.Core.Scalars.Operators

type Tensor = torch.Tensor

/// The decoder's observation model p(x|z).
type Likelihood =
    /// Independent Bernoulli features with logits from the decoder; data in [0, 1].
    | Bernoulli
    /// Independent Gaussians with a mean and a log-variance per feature from the decoder.
    | Gaussian

/// The estimator of the KL term (the paper's SGVB A or B).
type KlEstimator =
    /// Estimator B: the closed-form KL(q(z|x) ‖ N(0, I)).
    | Analytic
    /// Estimator A: log q(z|x) − log p(z) at the sampled z.
    | MonteCarlo

/// What training maximises.
type Objective =
    /// The ELBO (with the KL term weighted by Beta), estimated by SGVB A or B with L = Samples.
    | Elbo
    /// Burda et al.'s importance-weighted bound with K = Samples (Estimators.iwae); Beta must be 1.
    | ImportanceWeighted

/// An estimate of the mean log p(x) over a data set, with what a reader needs to trust it.
type LogLikelihoodEstimate =
    { /// The mean over rows of each row's estimate of log p(x), nats.
      Mean: float
      /// The standard error of Mean over rows (the rows' sample standard deviation / √n).
      StandardError: float
      /// The mean over rows of the importance weights' (Σw)²/Σw²: near `Samples`, the weights are even; near 1,
      /// one sample dominates and the estimate is unreliable (a lower bound far from log p).
      EffectiveSampleSize: float
      /// Importance samples (or AIS chains) per row.
      Samples: int }

/// How EstimateLogLikelihood estimates log p(x).
type LikelihoodEstimator =
    /// Importance sampling from q(z|x) (the importance-weighted bound; `samples` = K), as LogLikelihood.
    | ImportanceSampling
    /// Annealed importance sampling from the prior to the posterior along p(z) p(x|z)^β with HMC transitions
    /// (Wu et al. 2017; `samples` = chains per row), with these settings (Ais.defaults: 500 steps on a sigmoidal
    /// schedule, 10 leapfrog steps, step size adapted to 65% acceptance). Independent of the encoder.
    | AnnealedImportanceSampling of Ais.Config

/// Summarises per-row estimates [n] and effective sample sizes [n] (float64 tensors).
let summarise (perRow: Tensor) (ess: Tensor) (samples: int) : LogLikelihoodEstimate =
    let n = perRow.shape.[0]
    { Mean = perRow.mean().item<float> ()
      StandardError = (if n > 1L then perRow.std().item<float> () / sqrt (float n) else nan)
      EffectiveSampleSize = ess.mean().item<float> ()
      Samples = samples }

/// The architecture and objective of a VAE.
type VaeConfig =
    { /// Features per example (784 for MNIST).
      InputSize: int
      /// The dimension of z; at most InputSize.
      LatentSize: int
      /// Encoder hidden sizes, input side first; the decoder mirrors them.
      HiddenSizes: int list
      /// The decoder's observation model p(x|z).
      Likelihood: Likelihood
      /// SGVB estimator B (closed-form KL) or A (sampled KL).
      KlEstimator: KlEstimator
      /// L, reparameterised samples per example per step.
      Samples: int
      /// Weight of the KL term (1 gives the ELBO).
      Beta: float
      /// The ELBO or the IWAE bound (K = Samples).
      Objective: Objective
      /// The nonlinearity between hidden layers (ReLU by default, tanh in the paper).
      Activation: Mlp.Activation
      /// How the weights are initialised (PyTorch's uniform by default; Normal 0.01 in the paper, see `paper`).
      Init: Mlp.Init
      /// Some shape: a convolutional encoder and a transposed-convolutional decoder for images of that shape
      /// (ConvNet; HiddenSizes are then the channel counts, input side first); None: MLPs.
      Convolutional: ConvNet.ImageShape option
      /// Seeds the initial weights.
      Seed: int
      /// "auto", "cpu", "cuda" or "cuda:N" (see Device.parse).
      Device: string }

/// The PyTorch-example defaults: 784-400-20 style ReLU MLPs, Bernoulli, analytic KL, L = 1, β = 1.
let defaults inputSize latentSize =
    { InputSize = inputSize; LatentSize = latentSize; HiddenSizes = [ 400 ]; Likelihood = Bernoulli
      KlEstimator = Analytic; Samples = 1; Beta = 1.0; Objective = Elbo; Activation = Mlp.ReLU; Init = Mlp.Uniform; Convolutional = None; Seed = 0; Device = "auto" }

/// Kingma & Welling's MNIST model (section 5): 784-hidden-latent MLPs with tanh hidden units, a Bernoulli
/// decoder, and every weight and bias drawn from the paper's "N(0, 0.01)". We read 0.01 as the standard
/// deviation, the convention of numpy.random.normal(0, 0.01) in the code of that time, rather than as the
/// variance that the notation N(μ, σ²) would suggest; paper/'s Figures 2 and 3 are trained with it. This is
/// the one place that reading is made (Mlp.Init's doc, the docs and the scripts refer here).
let paper latentSize hiddenSize =
    { defaults 784 latentSize with HiddenSizes = [ hiddenSize ]; Activation = Mlp.Tanh; Init = Mlp.Normal 0.01 }

/// Checks the sizes and settings of a configuration.
let validateConfig (c: VaeConfig) =
    Validate.architecture c.InputSize c.LatentSize (if c.Convolutional.IsSome then [] else c.HiddenSizes)
    c.Convolutional |> Option.iter (fun shape -> ConvNet.validate c.InputSize shape c.HiddenSizes)
    Validate.positive "Samples" c.Samples
    Validate.nonNegativeFinite "Beta" c.Beta
    if c.Objective = ImportanceWeighted && c.Beta <> 1.0 then
        raise (ArgumentException($"Beta is {c.Beta}, but the importance-weighted objective has no KL weight: Beta must be 1.", "Beta"))
    Mlp.validateInit c.Init

/// The checkpoint kind of a VAE file.
[<Literal>]
let Kind = "vae"

/// Rows per chunk when scoring without gradients, and the element budget of one importance-sampling chunk.
let private evalRows = 1000L
let private sampleBudget = 1L <<< 23

let private likelihoods = [ "bernoulli", Bernoulli; "gaussian", Gaussian ]
let private estimators = [ "analytic", Analytic; "montecarlo", MonteCarlo ]
let private name choices value = choices |> List.find (snd >> (=) value) |> fst

let private optionsOf (c: VaeConfig) (own: bool) =
    [ "InputSize", ModelFile.ofInt c.InputSize; "LatentSize", ModelFile.ofInt c.LatentSize
      "HiddenSizes", ModelFile.ofInts c.HiddenSizes; "Likelihood", name likelihoods c.Likelihood
      "KlEstimator", name estimators c.KlEstimator; "Samples", ModelFile.ofInt c.Samples
      "Beta", ModelFile.ofFloat c.Beta; "Activation", ModelFile.ofActivation c.Activation
      "InitStd", ModelFile.ofInit c.Init; "Convolutional", ModelFile.ofImageShape c.Convolutional; "Seed", ModelFile.ofInt c.Seed
      "Networks", (if own then "own" else "mlp")
      "Objective", (match c.Objective with Elbo -> "elbo" | ImportanceWeighted -> "iwae") ]

let private outputsOf (c: VaeConfig) = match c.Likelihood with Bernoulli -> c.InputSize | Gaussian -> 2 * c.InputSize

let private builtInNetworks (c: VaeConfig) =
    validateConfig c
    let act = Some c.Activation
    let device = Device.parse c.Device
    let encoder, decoder =
        match c.Convolutional with
        | Some shape ->
            let outputChannels = match c.Likelihood with Bernoulli -> shape.Channels | Gaussian -> 2 * shape.Channels
            ConvNet.encoder shape c.HiddenSizes c.Activation (2 * c.LatentSize) :> Networks.Module,
            ConvNet.decoder shape c.HiddenSizes c.Activation c.LatentSize outputChannels :> Networks.Module
        | None ->
            Mlp.create (c.InputSize :: c.HiddenSizes @ [ 2 * c.LatentSize ]) act :> Networks.Module,
            Mlp.create (c.LatentSize :: List.rev c.HiddenSizes @ [ outputsOf c ]) act :> Networks.Module
    new Networks.EncoderDecoder("VariationalAutoencoder", device, encoder, decoder, Some c.Init, c.Seed)

/// Runs `net` once on two rows of zeros (no gradients, evaluation mode) and checks the output's shape:
/// research code's modules are checked here, before any weight can change.
let private trial (device: torch.Device) (name: string) (net: Networks.Module) (input: int) (expected: int) (meaning: string) =
    use _ = torch.no_grad ()
    use x = torch.zeros([| 2L; int64 input |], device = device)
    use y =
        try net.forward x
        with e -> raise (ArgumentException($"The {name} failed on an input of shape [2, {input}]: {e.Message}", name, e))
    if y.shape <> [| 2L; int64 expected |] then
        let got = String.Join(", ", y.shape)
        raise (ArgumentException(
            $"The {name} maps an input of shape [2, {input}] to [{got}]; this VAE needs [2, {expected}] ({meaning}).", name))

let private ownNetworks (c: VaeConfig) (encoder: Networks.Module) (decoder: Networks.Module) =
    if isNull encoder then nullArg "encoder"
    if isNull decoder then nullArg "decoder"
    validateConfig { c with HiddenSizes = []; Init = Mlp.Uniform; Convolutional = None }
    let device = Device.parse c.Device
    let net = new Networks.EncoderDecoder("VariationalAutoencoder", device, encoder, decoder, None, c.Seed)
    trial device "encoder" encoder c.InputSize (2 * c.LatentSize) "the means, then the log-variances of q(z|x)"
    let decoded = match c.Likelihood with Bernoulli -> "Bernoulli logits" | Gaussian -> "the means, then the log-variances of p(x|z)"
    trial device "decoder" decoder c.LatentSize (outputsOf c) decoded
    net

/// A VAE: an encoder x ↦ [μ, log σ²] of q(z|x) and a decoder z ↦ the parameters of p(x|z). The networks are
/// the library's MLPs (trained with the closed-form gradients of VaeBackprop on the ELBO under estimator B and
/// on the IWAE bound) or research code's own TorchSharp modules (trained through autograd); every member works
/// the same with either.
type VariationalAutoencoder private (config: VaeConfig, net: Networks.EncoderDecoder, own: bool) =
    let d = config.LatentSize
    let device = net.Device
    let encoder, decoder = net.Encoder, net.Decoder
    let outputs = outputsOf config

    let encode (x: Tensor) =
        use h = encoder.forward x // μ and log σ² are views: they keep its storage
        let parts = h.chunk(2L, -1L)
        parts.[0], parts.[1]

    /// The decoder on z [S,B,D] (or [B,D]): decoders take rows [n, D], so the S·B rows go through as one batch
    /// and come back as [S,B,·] (a view for the MLPs, whose layers treat leading dimensions so anyway).
    let decodeSamples (z: Tensor) =
        if z.dim () = 2L then decoder.forward z
        else
            use rows = z.reshape(-1L, z.shape.[z.shape.Length - 1])
            use out = decoder.forward rows
            out.reshape([| yield! z.shape.[.. z.shape.Length - 2]; out.shape.[1] |])

    let logLikelihood (z: Tensor) (x: Tensor) =
        let out = decodeSamples z
        match config.Likelihood with
        | Bernoulli -> Likelihood.bernoulliLogits out x
        | Gaussian ->
            let parts = out.chunk(2L, -1L)
            Likelihood.gaussian parts.[0] parts.[1] x

    let model : Estimators.LatentVariableModel = { Encode = encode; LogLikelihood = logLikelihood }

    let terms generator samples x =
        match config.KlEstimator with
        | Analytic -> Estimators.sgvbB generator samples model x
        | MonteCarlo -> Estimators.sgvbA generator samples model x

    /// The decoder's mean E[x|z]: Bernoulli probabilities or Gaussian means.
    let decodeMean (z: Tensor) =
        use out = decoder.forward z
        match config.Likelihood with
        | Bernoulli -> torch.sigmoid out
        | Gaussian ->
            let parts = out.chunk(2L, -1L)
            parts.[1].Dispose()
            parts.[0]

    /// The training loss per example of one minibatch: the β-weighted negative ELBO, or the negative IWAE bound.
    let loss generator (x: Tensor) =
        match config.Objective with
        | Elbo ->
            let t = terms generator config.Samples x
            use beta = Scalars.ofFloat config.Beta
            (t.Kl * beta - t.Reconstruction).mean()
        | ImportanceWeighted -> -(Estimators.iwae generator config.Samples model x).mean()

    /// The loss and its gradients for one step, the fast path chosen automatically when it applies: the
    /// library's MLPs on the ELBO with estimator B, or on the IWAE bound (which has no KL term, so either
    /// estimator), have a closed-form gradient (VaeBackprop) that equals autograd's; everything else
    /// (estimator A on the ELBO, convolutional or research code's own networks) goes through autograd.
    let lossAndGradients =
        let observation = match config.Likelihood with Bernoulli -> VaeBackprop.BernoulliLogits | Gaussian -> VaeBackprop.GaussianMeanLogVar
        match config.Objective, config.KlEstimator with
        | _ when own || config.Convolutional.IsSome -> Training.byAutograd loss
        | Elbo, Analytic -> VaeBackprop.lossAndGradients encoder decoder config.Activation observation config.Samples config.Beta
        | ImportanceWeighted, _ -> VaeBackprop.iwaeLossAndGradients encoder decoder config.Activation observation config.Samples
        | Elbo, MonteCarlo -> Training.byAutograd loss

    /// Importance samples per decoder pass for `rows` rows at a time: at most sampleBudget decoder outputs at once.
    let sampleChunk rows samples = int (max 1L (min (int64 samples) (sampleBudget / (rows * int64 outputs))))

    /// The importance-weighted bound with K = `samples`, mean over the rows of `data` (on this device), in
    /// chunks of rows and samples that bound the memory.
    let importanceWeightedMean seed samples (data: Tensor) =
        use generator = new torch.Generator(uint64 seed, device)
        let rows = 100L
        let chunk = sampleChunk rows samples
        Training.evaluateInChunks rows (Estimators.importanceWeighted generator samples chunk model) data

    /// The importance-weighted estimate of each row's log p(x) and its weights' effective sample size, float64 [n] each.
    let importanceWeightedPerRow seed samples (data: Tensor) =
        use _ = torch.no_grad ()
        use generator = new torch.Generator(uint64 seed, device)
        let rows = 100L
        let chunk = sampleChunk rows samples
        let bounds, sizes = ResizeArray<Tensor>(), ResizeArray<Tensor>()
        let mutable start = 0L
        while start < data.shape.[0] do
            use scope = torch.NewDisposeScope()
            let size = min rows (data.shape.[0] - start)
            let bound, ess = Estimators.importanceWeightedWithEss generator samples chunk model (data.narrow(0L, start, size))
            bounds.Add(scope.MoveToOuter(bound.to_type(torch.float64)))
            sizes.Add(scope.MoveToOuter(ess.to_type(torch.float64)))
            start <- start + size
        torch.cat(bounds.ToArray(), 0L), torch.cat(sizes.ToArray(), 0L)

    let elboPerExample seed samples (data: Tensor) =
        use generator = new torch.Generator(uint64 seed, device)
        Training.evaluateInChunks evalRows (fun x -> Estimators.elbo (Estimators.sgvbB generator samples model x)) data

    /// The ELBO's two terms per example, averaged over the rows (estimator B, one sample, a fixed seed):
    /// "kl", KL(q(z|x) ‖ N(0, I)), and "reconstruction", −E_q[log p(x|z)]; their sum is −ELBO.
    let termsOf (data: Tensor) =
        let mean select =
            use generator = new torch.Generator(uint64 config.Seed, device)
            Training.evaluateInChunks evalRows (fun x -> select (Estimators.sgvbB generator 1 model x)) data
        [ "kl", mean (fun t -> t.Kl); "reconstruction", mean (fun t -> -t.Reconstruction) ]

    /// A VAE with the library's MLP encoder and decoder, built and initialised from `config`.
    new(config: VaeConfig) = new VariationalAutoencoder(config, builtInNetworks config, false)

    /// A VAE on research code's own modules: `encoder` maps [n, InputSize] to [n, 2·LatentSize] (the means,
    /// then the log-variances), `decoder` maps [n, LatentSize] to [n, InputSize] Bernoulli logits or [n,
    /// 2·InputSize] Gaussian means then log-variances. HiddenSizes, Activation and Init are not used, and the
    /// modules keep their weights (Seed seeds the training and sampling noise only). A one-row trial checks
    /// the output shapes (ArgumentException naming both). The model owns the modules: Dispose disposes them.
    new(config: VaeConfig, encoder: Networks.Module, decoder: Networks.Module) =
        new VariationalAutoencoder(config, ownNetworks config encoder decoder, true)

    /// The architecture and objective this model was built with.
    member _.Config = config
    /// True when the networks are research code's own modules, not the library's MLPs.
    member _.HasOwnNetworks = own
    /// The options a model file (and a run checkpoint) records for this model.
    member _.SavedOptions : (string * string) list = optionsOf config own
    /// The networks (encoder x ↦ [μ, log σ²]; decoder z ↦ logits or [mean, log-variance]), device and lifetime.
    member _.Networks = net
    /// The model as tensor functions q(z|x), log p(x|z), for the estimators.
    member _.Model = model

    /// What Fit does to one minibatch (on this model's device) before the optimiser step: returns the
    /// β-weighted −ELBO per example (or the negative IWAE bound), after putting its gradient into the
    /// parameters' gradients (written over them by the closed-form paths, added to them through autograd
    /// otherwise; Fit zeroes them first).
    member _.LossAndGradients(generator: torch.Generator, batch: Tensor) : Tensor =
        net.ThrowIfDisposed()
        lossAndGradients generator batch

    /// Draws x ~ p(x|z) for latent rows z already on this model's device, without gradients: Bernoulli
    /// draws, or Gaussian draws with the decoded mean and variance. Used by the sleep phase of wake-sleep.
    member _.DrawObservations(z: Tensor, generator: torch.Generator) : Tensor =
        use _ = torch.no_grad ()
        use scope = torch.NewDisposeScope()
        let out = decoder.forward z
        let x =
            match config.Likelihood with
            | Bernoulli -> torch.bernoulli(torch.sigmoid out, generator)
            | Gaussian ->
                let parts = out.chunk(2L, -1L)
                Gaussian.sample generator 1 parts.[0] parts.[1] |> fun s -> s.squeeze(0L)
        x.MoveToOuterDisposeScope()

    /// Checks a data matrix against this model (shape, finiteness, [0, 1] for Bernoulli).
    member _.CheckData(name: string, data: Tensor) =
        net.ThrowIfDisposed()
        match config.Likelihood with
        | Bernoulli -> Validate.unitMatrix name config.InputSize data
        | Gaussian -> Validate.matrix name config.InputSize data

    /// The posterior parameters (μ, log σ²) of q(z|x), each [n, LatentSize].
    member this.Encode(x: Tensor) : Tensor * Tensor =
        this.CheckData("data", x)
        use _ = torch.no_grad ()
        use xd = net.ToDevice x
        encode xd

    /// E[x|z] for codes z [n, LatentSize].
    member _.Decode(z: Tensor) : Tensor =
        net.ThrowIfDisposed()
        Validate.matrix "latent" d z
        use _ = torch.no_grad ()
        use zd = net.ToDevice z
        decodeMean zd

    /// Decodes the posterior mean of each example.
    member this.Reconstruct(x: Tensor) : Tensor =
        this.CheckData("data", x)
        use _ = torch.no_grad ()
        use xd = net.ToDevice x
        let mu, logVar = encode xd
        use _l = logVar
        use _m = mu
        decodeMean mu

    /// Mean KL(q(z_j|x) ‖ N(0, 1)) over the rows of `x`, for each latent dimension j [LatentSize] (float64, nats):
    /// ½(μ_j² + σ_j² − 1 − log σ_j²). Dimensions near 0 are unused ("posterior collapse"); their sum is the KL term.
    member this.KlPerDimension(x: Tensor) : float[] =
        this.CheckData("data", x)
        use _ = torch.no_grad ()
        use xd = net.ToDevice x
        use scope = torch.NewDisposeScope()
        let sums = torch.zeros(int64 d, dtype = torch.float64, device = device)
        let mutable start = 0L
        while start < xd.shape.[0] do
            let rows = min evalRows (xd.shape.[0] - start)
            let mu, logVar = encode (xd.narrow(0L, start, rows))
            let mu, logVar = mu.to_type(torch.float64), logVar.to_type(torch.float64)
            sums.add_(((mu * mu +. logVar.exp() - Scalars.one - logVar) * Scalars.half).sum(0L), Scalars.one) |> ignore
            start <- start + rows
        use n = Scalars.ofFloat (float xd.shape.[0])
        (sums / n).cpu().data<float>().ToArray()

    /// Burda et al.'s active units: the number of latent dimensions j whose posterior mean moves with the data,
    /// Var_x(E_q[z_j|x]) > `threshold` (sample variance over the rows of `x`, n − 1; Burda et al. use 10⁻²).
    member this.ActiveUnits(x: Tensor, threshold: float) : int =
        this.CheckData("data", x)
        if x.shape.[0] < 2L then raise (ArgumentException($"Active units need a variance over rows: data has {x.shape.[0]} row(s), at least 2 are needed.", "data"))
        Validate.nonNegativeFinite "threshold" threshold
        use _ = torch.no_grad ()
        use xd = net.ToDevice x
        use scope = torch.NewDisposeScope()
        let means = ResizeArray<Tensor>()
        let mutable start = 0L
        while start < xd.shape.[0] do
            let rows = min evalRows (xd.shape.[0] - start)
            let mu, _ = encode (xd.narrow(0L, start, rows))
            means.Add(mu.to_type(torch.float64))
            start <- start + rows
        use limit = Scalars.ofFloat threshold
        int (torch.cat(means.ToArray(), 0L).var(0L).gt(limit).sum().item<int64> ())

    /// Mean squared error per element of Reconstruct(x) against x, as the autoencoder's and PCA's.
    member this.ReconstructionError(x: Tensor) : float =
        this.CheckData("data", x)
        use _ = torch.no_grad ()
        use xd = net.ToDevice x
        Training.evaluateInChunks evalRows (fun rows ->
            let mu, logVar = encode rows
            use _l = logVar
            use _m = mu
            use r = decodeMean mu
            torch.nn.functional.mse_loss(r, rows, reduction = torch.nn.Reduction.None).mean([| 1L |])) xd

    /// E[x|z] for `count` draws z ~ N(0, I).
    member _.Sample(count: int, seed: int) : Tensor =
        net.ThrowIfDisposed()
        Validate.positive "count" count
        use _ = torch.no_grad ()
        use generator = new torch.Generator(uint64 seed, device)
        use z = torch.randn([| int64 count; int64 d |], device = device, generator = generator)
        decodeMean z

    /// The ELBO per example (estimator B, `samples` draws), averaged over the rows, in nats.
    member this.Elbo(data: Tensor, samples: int, seed: int) : float =
        this.CheckData("data", data)
        Validate.positive "samples" samples
        use xd = net.ToDevice data
        elboPerExample seed samples xd

    /// The importance-weighted estimate of log p(x) with K = `importanceSamples`, averaged over the rows.
    member this.LogLikelihood(data: Tensor, importanceSamples: int, seed: int) : float =
        this.CheckData("data", data)
        Validate.positive "importanceSamples" importanceSamples
        use xd = net.ToDevice data
        importanceWeightedMean seed importanceSamples xd

    /// The importance-sampling estimate of log p(x) (K = `samples`, the same estimator as LogLikelihood, so its
    /// Mean equals LogLikelihood's for the same seed) with the standard error over rows and the weights' mean
    /// effective sample size.
    member this.EstimateLogLikelihood(data: Tensor, samples: int, seed: int) : LogLikelihoodEstimate =
        this.EstimateLogLikelihood(data, ImportanceSampling, samples, seed)

    /// An estimate of log p(x) by `estimator` with `samples` importance samples or AIS chains per row, the
    /// standard error over rows and the weights' mean effective sample size. AIS costs far more than IS per
    /// sample (about 1.8 s per MNIST row for a 784-400-20 VAE with 16 chains here, against 0.03 s for IS with
    /// K = 2000) and is the independent cross-check: IS needs a good q(z|x), AIS does not use it.
    member this.EstimateLogLikelihood(data: Tensor, estimator: LikelihoodEstimator, samples: int, seed: int) : LogLikelihoodEstimate =
        this.CheckData("data", data)
        Validate.positive "samples" samples
        use xd = net.ToDevice data
        let perRow, ess =
            match estimator with
            | ImportanceSampling -> importanceWeightedPerRow seed samples xd
            | AnnealedImportanceSampling settings ->
                use generator = new torch.Generator(uint64 seed, device)
                let e = Ais.forward generator settings samples d model xd
                use _w = e.LogWeights
                use _a = e.AcceptanceRate
                e.LogMarginal.to_type(torch.float64), e.EffectiveSampleSize.to_type(torch.float64)
        use _p = perRow
        use _e = ess
        summarise perRow ess samples

    /// Trains on the rows of `data`; TrainLoss is the β-weighted −ELBO per example, or the negative IWAE bound
    /// (K = Samples) under ImportanceWeighted, and ValidationLoss the same without β, with this model's seed
    /// (one sample for the ELBO). Refuses a second concurrent Fit on the same model.
    member this.Fit(data: Tensor, training: Training.TrainingConfig) : Training.EpochReport list =
        this.CheckData("data", data)
        training.Validation |> Option.iter (fun v -> this.CheckData("validation", v))
        let validationLoss (v: Tensor) =
            match config.Objective with
            | Elbo -> -(elboPerExample config.Seed 1 v)
            | ImportanceWeighted -> -(importanceWeightedMean config.Seed config.Samples v)
        net.Fit(data, training, lossAndGradients, validationLoss, this.Terms, this.SavedOptions)

    /// The ELBO's terms per example on the rows of `data` (already on this model's device): "kl" and
    /// "reconstruction" (−E_q[log p(x|z)]), estimator B with one sample and this model's seed.
    member _.Terms(data: Tensor) : (string * float) list = termsOf data

    interface IDisposable with
        member _.Dispose() = (net :> IDisposable).Dispose()

/// Writes `model` to `path` atomically (a temp file, then a rename).
let save (path: string) (model: VariationalAutoencoder) = ModelFile.save path Kind model.SavedOptions model.Networks

let private configOf (cp: Checkpoint.Checkpoint) (device: string) =
    { InputSize = ModelFile.int cp "InputSize"; LatentSize = ModelFile.int cp "LatentSize"
      HiddenSizes = ModelFile.ints cp "HiddenSizes"; Likelihood = ModelFile.choice cp "Likelihood" likelihoods
      KlEstimator = ModelFile.choice cp "KlEstimator" estimators; Samples = ModelFile.int cp "Samples"
      Beta = ModelFile.float cp "Beta"
      // Files of the first milestone lack it: they trained on the ELBO.
      Objective =
        (if cp.Options |> List.exists (fst >> (=) "Objective") then ModelFile.choice cp "Objective" [ "elbo", Elbo; "iwae", ImportanceWeighted ]
         else Elbo)
      Activation = ModelFile.activationOr cp Mlp.ReLU
      Init = ModelFile.initOr cp Mlp.Uniform; Convolutional = ModelFile.imageShape cp; Seed = ModelFile.int cp "Seed"
      Device = device }

let private hasOwnNetworks (cp: Checkpoint.Checkpoint) = List.contains ("Networks", "own") cp.Options

/// Reads a VAE written by `save` onto `device`; InvalidDataException for a damaged or foreign file, or for
/// a model saved with its own networks (load it with `loadInto`).
let load (path: string) (device: string) : VariationalAutoencoder =
    ModelFile.load path device Kind
        (fun cp ->
            if hasOwnNetworks cp then
                raise (IO.InvalidDataException(
                    $"'{path}' holds a VAE with its own encoder and decoder modules: build them and load it with loadInto (C#: VariationalAutoencoder.Load(path, encoder, decoder))."))
            new VariationalAutoencoder(configOf cp device))
        (fun m -> m.Networks)

/// Reads the weights of a VAE written by `save` into freshly built `encoder` and `decoder` modules and
/// returns the model around them. Their parameter names and shapes must be the file's: a mismatch is an
/// InvalidDataException, checked before anything is built, so the modules are left unchanged.
let loadInto (path: string) (encoder: Networks.Module) (decoder: Networks.Module) (device: string) : VariationalAutoencoder =
    if isNull encoder then nullArg "encoder"
    if isNull decoder then nullArg "decoder"
    ModelFile.loadChecked path device Kind
        (fun cp -> Networks.checkTensors "VAE's modules" (Networks.namedParameters encoder decoder) cp.Tensors)
        (fun cp -> new VariationalAutoencoder(configOf cp device, encoder, decoder))
        (fun m -> m.Networks)

/// Writes the parameters of `model` to `path` as a PyTorch state_dict that `torch.load` reads, atomically;
/// the names are PyTorch's (`encoder.0.weight`, …; see PyTorch and docs/pytorch.md).
let exportPyTorch (path: string) (model: VariationalAutoencoder) = PyTorch.export path model.Networks

/// A VAE built from `config` with the parameters of a state_dict that PyTorch saved for the module of
/// docs/pytorch.md (`torch.save(model.state_dict(), path)`; float32 or float64). A bad config is an
/// ArgumentException before the file is read; a file that is not such a state_dict, or whose names or
/// shapes differ from the config's architecture, is an InvalidDataException naming them, and nothing is built.
let importPyTorch (path: string) (config: VaeConfig) : VariationalAutoencoder =
    PyTorch.import path "VariationalAutoencoder" (fun () -> new VariationalAutoencoder(config)) (fun m -> m.Networks)

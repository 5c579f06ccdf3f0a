/// The variational autoencoder of Kingma & Welling (2013): a Gaussian encoder q(z|x), a Bernoulli or
/// Gaussian decoder p(x|z), the N(0, I) prior, trained on the SGVB estimate of the ELBO.
module Research.Core.Vae

open System
open TorchSharp

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
      /// The nonlinearity between hidden layers (ReLU by default, tanh in the paper).
      Activation: Mlp.Activation
      /// How the weights are initialised (PyTorch's uniform by default, N(0, 0.01) in the paper).
      Init: Mlp.Init
      /// Seeds the initial weights.
      Seed: int
      /// "auto", "cpu", "cuda" or "cuda:N" (see Device.parse).
      Device: string }

/// The PyTorch-example defaults: 784-400-20 style ReLU MLPs, Bernoulli, analytic KL, L = 1, β = 1.
let defaults inputSize latentSize =
    { InputSize = inputSize; LatentSize = latentSize; HiddenSizes = [ 400 ]; Likelihood = Bernoulli
      KlEstimator = Analytic; Samples = 1; Beta = 1.0; Activation = Mlp.ReLU; Init = Mlp.Uniform; Seed = 0; Device = "auto" }

/// Checks the sizes and settings of a configuration.
let validateConfig (c: VaeConfig) =
    Validate.architecture c.InputSize c.LatentSize c.HiddenSizes
    Validate.positive "Samples" c.Samples
    Validate.nonNegativeFinite "Beta" c.Beta
    match c.Init with
    | Mlp.Normal std -> Validate.positiveFinite "Init std" std
    | Mlp.Uniform -> ()

/// The checkpoint kind of a VAE file.
[<Literal>]
let Kind = "vae"

/// Rows per chunk when scoring without gradients, and the element budget of one importance-sampling chunk.
let private evalRows = 1000L
let private sampleBudget = 1L <<< 23

let private networks (c: VaeConfig) =
    validateConfig c
    let outputs = match c.Likelihood with Bernoulli -> c.InputSize | Gaussian -> 2 * c.InputSize
    let act = Some c.Activation
    let device = Device.parse c.Device
    let encoder = Mlp.create (c.InputSize :: c.HiddenSizes @ [ 2 * c.LatentSize ]) act
    let decoder = Mlp.create (c.LatentSize :: List.rev c.HiddenSizes @ [ outputs ]) act
    new Networks.EncoderDecoder("VariationalAutoencoder", device, encoder, decoder, c.Init, c.Seed)

/// A VAE with an MLP encoder whose last layer emits (μ, log σ²) together and an MLP decoder.
type VariationalAutoencoder(config: VaeConfig) =
    let net = networks config
    let d = config.LatentSize
    let device = net.Device
    let encoder, decoder = net.Encoder, net.Decoder
    let outputs = match config.Likelihood with Bernoulli -> config.InputSize | Gaussian -> 2 * config.InputSize

    let encode (x: Tensor) =
        use h = encoder.forward x // μ and log σ² are views: they keep its storage
        let parts = h.chunk(2L, -1L)
        parts.[0], parts.[1]

    let logLikelihood (z: Tensor) (x: Tensor) =
        let out = decoder.forward z
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

    /// The β-weighted negative ELBO per example of one minibatch.
    let loss generator (x: Tensor) =
        let t = terms generator config.Samples x
        (t.Kl * config.Beta - t.Reconstruction).mean()

    /// The loss and its gradients for one step: estimator B has a closed-form gradient (VaeBackprop);
    /// estimator A goes through autograd.
    let lossAndGradients =
        match config.KlEstimator with
        | Analytic ->
            let observation = match config.Likelihood with Bernoulli -> VaeBackprop.BernoulliLogits | Gaussian -> VaeBackprop.GaussianMeanLogVar
            VaeBackprop.lossAndGradients encoder decoder config.Activation observation config.Samples config.Beta
        | MonteCarlo -> Training.byAutograd loss

    let elboPerExample seed samples (data: Tensor) =
        use generator = new torch.Generator(uint64 seed, device)
        Training.evaluateInChunks evalRows (fun x -> Estimators.elbo (Estimators.sgvbB generator samples model x)) data

    /// The architecture and objective this model was built with.
    member _.Config = config
    /// The networks (encoder x ↦ [μ, log σ²]; decoder z ↦ logits or [mean, log-variance]), device and lifetime.
    member _.Networks = net
    /// The model as tensor functions q(z|x), log p(x|z), for the estimators.
    member _.Model = model

    /// What Fit does to one minibatch (on this model's device) before the optimiser step: returns the
    /// β-weighted −ELBO per example, after putting its gradient into the parameters' gradients (written
    /// over them for estimator B, added to them through autograd for A; Fit zeroes them first).
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
        use generator = new torch.Generator(uint64 seed, device)
        let rows = 100L
        let chunk = int (max 1L (min (int64 importanceSamples) (sampleBudget / (rows * int64 outputs))))
        Training.evaluateInChunks rows (Estimators.importanceWeighted generator importanceSamples chunk model) xd

    /// Trains on the rows of `data`; TrainLoss is the β-weighted −ELBO per example. Refuses a second
    /// concurrent Fit on the same model.
    member this.Fit(data: Tensor, training: Training.TrainingConfig) : Training.EpochReport list =
        this.CheckData("data", data)
        training.Validation |> Option.iter (fun v -> this.CheckData("validation", v))
        net.Fit(data, training, lossAndGradients, (fun v -> -(elboPerExample config.Seed 1 v)))

    interface IDisposable with
        member _.Dispose() = (net :> IDisposable).Dispose()

let private likelihoods = [ "bernoulli", Bernoulli; "gaussian", Gaussian ]
let private estimators = [ "analytic", Analytic; "montecarlo", MonteCarlo ]
let private activations = [ "relu", Mlp.ReLU; "tanh", Mlp.Tanh ]
let private name choices value = choices |> List.find (snd >> (=) value) |> fst

/// Writes `model` to `path` atomically (a temp file, then a rename).
let save (path: string) (model: VariationalAutoencoder) =
    let c = model.Config
    ModelFile.save path Kind
        [ "InputSize", ModelFile.ofInt c.InputSize; "LatentSize", ModelFile.ofInt c.LatentSize
          "HiddenSizes", ModelFile.ofInts c.HiddenSizes; "Likelihood", name likelihoods c.Likelihood
          "KlEstimator", name estimators c.KlEstimator; "Samples", ModelFile.ofInt c.Samples
          "Beta", ModelFile.ofFloat c.Beta; "Activation", name activations c.Activation
          "InitStd", (match c.Init with Mlp.Uniform -> "uniform" | Mlp.Normal s -> ModelFile.ofFloat s)
          "Seed", ModelFile.ofInt c.Seed ]
        model.Networks

/// Reads a VAE written by `save` onto `device`; InvalidDataException for a damaged or foreign file.
let load (path: string) (device: string) : VariationalAutoencoder =
    ModelFile.load path device Kind
        (fun cp ->
            let init = if List.contains ("InitStd", "uniform") cp.Options then Mlp.Uniform else Mlp.Normal(ModelFile.float cp "InitStd")
            let config =
                { InputSize = ModelFile.int cp "InputSize"; LatentSize = ModelFile.int cp "LatentSize"
                  HiddenSizes = ModelFile.ints cp "HiddenSizes"; Likelihood = ModelFile.choice cp "Likelihood" likelihoods
                  KlEstimator = ModelFile.choice cp "KlEstimator" estimators; Samples = ModelFile.int cp "Samples"
                  Beta = ModelFile.float cp "Beta"; Activation = ModelFile.choice cp "Activation" activations
                  Init = init; Seed = ModelFile.int cp "Seed"; Device = device }
            new VariationalAutoencoder(config))
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

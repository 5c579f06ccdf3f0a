/// The linear VAE of Lucas, Tucker, Grosse & Norouzi (2019), "Don't blame the ELBO": a linear encoder
/// x ↦ [μ, log σ²] and a linear Gaussian decoder z ↦ W z + b with one learned noise variance shared by
/// every pixel. Its generative model is exactly probabilistic PCA's, so its maximum likelihood is PPCA's
/// closed-form one (ProbabilisticPca.fit), and Lucas et al. show that its ELBO is tight at that optimum:
/// the yardstick for whether the VAE's training reaches the best it can.
module Research.Core.LinearVae

open TorchSharp

type Tensor = torch.Tensor

/// A decoder whose Gaussian has the means of `mean` and one learned log-variance for every output, laid
/// out as the VAE's Gaussian decoders are: [means, log-variances].
type SharedVarianceDecoder(mean: Networks.Module, initialLogVariance: float) as this =
    inherit torch.nn.Module<Tensor, Tensor>("SharedVarianceDecoder")
    let logVariance = torch.nn.Parameter(torch.tensor([| float32 initialLogVariance |]))
    do
        this.register_module("mean", mean)
        this.register_parameter("logVariance", logVariance)

    /// The shared log-variance, a parameter of one element.
    member _.LogVariance : Tensor = logVariance

    /// [W z + b, log σ² repeated], [n, 2·outputs].
    override _.forward(z: Tensor) =
        use m = mean.forward z
        use v = logVariance.expand(m.shape)
        torch.cat([| m; v |], 1L)

/// A linear VAE for `inputSize`-dimensional real data with `latentSize` latent dimensions: encoder and
/// decoder mean are single affine layers (PyTorch's uniform initialisation drawn from `seed`), the noise
/// log-variance starts at 0. Train it with Fit as any VAE (it goes through autograd).
let create (inputSize: int) (latentSize: int) (seed: int) : Vae.VariationalAutoencoder =
    let config = { Vae.defaults inputSize latentSize with HiddenSizes = []; Likelihood = Vae.Gaussian; Seed = seed }
    Vae.validateConfig config
    let encoder = torch.nn.Linear(int64 inputSize, 2L * int64 latentSize)
    let decoder = new SharedVarianceDecoder(torch.nn.Linear(int64 latentSize, int64 inputSize), 0.0)
    use g = new torch.Generator(uint64 seed)
    Mlp.initialise g Mlp.Uniform [ encoder :> torch.nn.Module; decoder ]
    new Vae.VariationalAutoencoder(config, encoder, decoder)

/// The learned noise variance σ² of a VAE whose decoder is a SharedVarianceDecoder (as `create` builds).
let noiseVariance (vae: Vae.VariationalAutoencoder) : float =
    match vae.Networks.Decoder with
    | :? SharedVarianceDecoder as d -> float (d.LogVariance.exp().item<float32> ())
    | _ -> invalidArg "vae" "The VAE's decoder is not a SharedVarianceDecoder (build it with LinearVae.create)."

/// Trains to the optimum: four stages of Adam with a decreasing step size, 3·10⁻² for 3 × `epochsPerStage`
/// epochs and 10⁻² for `epochsPerStage` on minibatches of 50, then 3·10⁻³ and 10⁻³ for `epochsPerStage` each
/// on full batches, so that no minibatch noise is left at the end to hold the encoder's variance away from
/// the optimum. The first stage is long because some starts cross a flat stretch: with 100 epochs in it, 2 of
/// 60 seeds (on 1000 rows of 8-dimensional PPCA data) ended 0.04–0.05 nats below PPCA's maximum; with 300,
/// every one of the 60 ended within 0.001.
let fitToOptimum (vae: Vae.VariationalAutoencoder) (x: Tensor) (epochsPerStage: int) =
    let n = int x.shape.[0]
    for lr, batch, epochs in [ 3e-2, 50, 3 * epochsPerStage; 1e-2, 50, epochsPerStage; 3e-3, n, epochsPerStage; 1e-3, n, epochsPerStage ] do
        vae.Fit(x, { Training.defaults with LearningRate = lr; Epochs = epochs; BatchSize = batch }) |> ignore

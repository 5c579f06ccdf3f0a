/// The wake-sleep algorithm (Hinton, Dayan, Frey & Neal 1995), the AEVB paper's baseline, on the same
/// encoder and decoder as a VAE.
module Research.Core.WakeSleep

open TorchSharp
open Research.Core.Scalars.Operators

type Tensor = torch.Tensor

/// The wake-phase loss: −log p(x, z) at z ~ q(z|x) held fixed, a gradient for the decoder only.
let wakeLoss (generator: torch.Generator) (model: Estimators.LatentVariableModel) (x: Tensor) : Tensor =
    let z =
        use _ = torch.no_grad ()
        let mu, logVar = model.Encode x
        Gaussian.sample generator 1 mu logVar
    -(model.LogLikelihood z x +. Gaussian.logStandardNormal z).mean()

/// The sleep-phase loss: −log q(z|x̃) on fantasies z ~ p(z), x̃ ~ p(x|z), a gradient for the encoder only.
let sleepLoss (generator: torch.Generator) (vae: Vae.VariationalAutoencoder) (batch: int64) : Tensor =
    let d = int64 vae.Config.LatentSize
    let z = torch.randn([| batch; d |], device = vae.Networks.Device, generator = generator)
    let fantasy = vae.DrawObservations(z, generator)
    let mu, logVar = vae.Model.Encode fantasy
    -(Gaussian.logDensity mu logVar z).mean()

/// Trains `vae`'s networks by wake-sleep: each minibatch takes one wake step on the decoder and one sleep
/// step (with as many fantasies as examples) on the encoder. TrainLoss is the sum of the two losses per
/// example, not a bound; ValidationLoss is −ELBO per example, comparable with AEVB's.
let fit (vae: Vae.VariationalAutoencoder) (data: Tensor) (training: Training.TrainingConfig) : Training.EpochReport list =
    vae.CheckData("data", data)
    training.Validation |> Option.iter (fun v -> vae.CheckData("validation", v))
    let loss generator (x: Tensor) = wakeLoss generator vae.Model x +. sleepLoss generator vae x.shape.[0]
    let evaluate (v: Tensor) = -(vae.Elbo(v, 1, vae.Config.Seed))
    vae.Networks.Fit(data, training, Training.byAutograd loss, evaluate, vae.Terms, ("Algorithm", "wake-sleep") :: vae.SavedOptions)

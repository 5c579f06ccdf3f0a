/// The models and optimiser of the AEVB paper's MNIST experiments (section 5), and the two algorithms.
module Reproduce.PaperModels

open TorchSharp
open Research.Core

/// AEVB (the paper's method) or one of its baselines, wake-sleep (the same encoder and decoder) and Monte
/// Carlo EM (the same decoder; Figure 3 only).
type Algorithm =
    | Aevb
    | WakeSleep
    | Mcem

/// The name used in legends and file names.
let name = function Aevb -> "AEVB" | WakeSleep -> "Wake-sleep" | Mcem -> "MCEM"

/// The paper's model (Vae.paper: one hidden layer of tanh units in the encoder and the decoder, a Bernoulli
/// decoder, the paper's initialisation).
let vae (latent: int) (hidden: int) = new Vae.VariationalAutoencoder(Vae.paper latent hidden)

/// Adagrad on minibatches of M = 100, L = 1, with the N(0, I) prior on the parameters as a weight decay
/// of 1/N per example.
let adagrad (trainSize: int64) (stepSize: float) (epochs: int) =
    { Training.defaults with
        Optimizer = Training.Adagrad; LearningRate = stepSize; BatchSize = 100; Epochs = epochs
        WeightDecay = 1.0 / float trainSize }

/// Trains with the chosen algorithm.
let fit (algorithm: Algorithm) (model: Vae.VariationalAutoencoder) (data: torch.Tensor) (config: Training.TrainingConfig) =
    match algorithm with
    | Aevb -> model.Fit(data, config)
    | WakeSleep -> WakeSleep.fit model data config
    | Mcem -> Mcem.fit Mcem.defaults model data config

/// The paper chose Adagrad's step size from {0.01, 0.02, 0.1} "based on performance on the training set
/// in the first few iterations": here, the best ELBO on the first `rows` training images after one pass
/// over them. MCEM leaves the encoder untrained, so the ELBO says nothing of it: its step size is the one
/// with the best mean log p(x, z) at its HMC samples over that pass, the objective it maximises.
let stepSize (rows: int64) (algorithm: Algorithm) (latent: int) (hidden: int) (train: torch.Tensor) =
    use first = train.narrow(0L, 0L, min rows train.shape.[0])
    [ 0.01; 0.02; 0.1 ]
    |> List.maxBy (fun lr ->
        use model = vae latent hidden
        try
            let reports = fit algorithm model first (adagrad train.shape.[0] lr 1)
            match algorithm with
            | Mcem -> -(List.last reports).TrainLoss
            | Aevb | WakeSleep -> model.Elbo(first, 1, 0)
        with :? Training.DivergedException -> -infinity)

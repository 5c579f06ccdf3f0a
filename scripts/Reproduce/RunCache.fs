/// Train once, reuse afterwards: trained models are kept under runs/ (git-ignored) by name.
module Reproduce.RunCache

open System
open System.IO
open TorchSharp
open Research.Core

let private log = Log.line

/// The model in `folder`/`name`.model if that file exists, else the one `train` returns, saved there.
let private cached (load: string -> string -> 'Model) (save: string -> 'Model -> unit) (folder: string) (name: string) (train: unit -> 'Model) : 'Model =
    let path = Path.Combine(folder, name + ".model")
    if File.Exists path then
        log $"{name}: loading {path}"
        load path "auto"
    else
        log $"{name}: training"
        let model = train ()
        Directory.CreateDirectory folder |> ignore
        save path model
        log $"{name}: saved {path}"
        model

/// Loads the VAE `folder`/`name`.model, or trains one with `train` and saves it there.
let vae (folder: string) (name: string) (train: unit -> Vae.VariationalAutoencoder) : Vae.VariationalAutoencoder =
    cached Vae.load Vae.save folder name train

/// Loads the autoencoder `folder`/`name`.model, or trains one with `train` and saves it there.
let autoencoder (folder: string) (name: string) (train: unit -> Autoencoder.Autoencoder) : Autoencoder.Autoencoder =
    cached Autoencoder.load Autoencoder.save folder name train

/// TensorBoard event files of the model `name`, beside the cache: `tensorboard --logdir runs/tensorboard`.
let private tensorBoard (folder: string) (name: string) = Some(Path.Combine(folder, "tensorboard", name))

/// The VAE of the paper's MNIST figures, cached in `folder`: a 784-500-N_z encoder and mirrored
/// decoder (Vae.defaults otherwise: ReLU, Bernoulli, analytic KL), Adam 1e-3 on minibatches of 100 for
/// `epochs` epochs over `train`. The name records N_z, the epochs and the training set size.
let mnistVae (folder: string) (train: torch.Tensor) (latent: int) (epochs: int) : Vae.VariationalAutoencoder =
    let n = train.shape.[0]
    vae folder $"vae-z{latent}-h500-n{n}-e{epochs}" (fun () ->
        let model = new Vae.VariationalAutoencoder({ Vae.defaults 784 latent with HiddenSizes = [ 500 ] })
        let progress (r: Training.EpochReport) =
            log $"  VAE N_z = {latent} epoch {r.Epoch}: train −ELBO {r.TrainLoss:F2} ({r.Elapsed.TotalSeconds:F1} s)"
        model.Fit(train, { Training.defaults with
                            Epochs = epochs; BatchSize = 100; LearningRate = 1e-3; Progress = progress
                            TensorBoard = tensorBoard folder $"vae-z{latent}-h500-n{n}-e{epochs}" }) |> ignore
        model)

let private epochLog name (r: Training.EpochReport) =
    let v = r.ValidationLoss |> Option.map (sprintf ", validation %.4f") |> Option.defaultValue ""
    log $"  {name} epoch {r.Epoch}: train loss {r.TrainLoss:F4}{v} ({r.Elapsed.TotalSeconds:F1} s)"

/// The linear autoencoder 784-N_z-784 (no nonlinearity), Adam 1e-3, minibatches of 128.
let linearAe (folder: string) (train: torch.Tensor) (latent: int) (epochs: int) =
    let name = $"linear-ae-z{latent}-n{train.shape.[0]}-e{epochs}"
    autoencoder folder name (fun () ->
        let model = new Autoencoder.Autoencoder({ InputSize = 784; LatentSize = latent; HiddenSizes = []; Linear = true; Activation = Mlp.ReLU; Init = Mlp.Uniform; Convolutional = None; Seed = 0; Device = "auto" })
        model.Fit(train, { Training.defaults with Epochs = epochs; Progress = epochLog name; TensorBoard = tensorBoard folder name }) |> ignore
        model)

/// The deep autoencoder 784-256-64-N_z (ReLU, sigmoid output), Adam 1e-3, minibatches of 128.
let deepAe (folder: string) (train: torch.Tensor) (latent: int) (epochs: int) =
    let name = $"ae-256-64-z{latent}-n{train.shape.[0]}-e{epochs}"
    autoencoder folder name (fun () ->
        let model = new Autoencoder.Autoencoder({ InputSize = 784; LatentSize = latent; HiddenSizes = [ 256; 64 ]; Linear = false; Activation = Mlp.ReLU; Init = Mlp.Uniform; Convolutional = None; Seed = 0; Device = "auto" })
        model.Fit(train, { Training.defaults with Epochs = epochs; Progress = epochLog name; TensorBoard = tensorBoard folder name }) |> ignore
        model)

/// The PyTorch example's VAE 784-400-N_z (ReLU, Bernoulli), Adam 1e-3, minibatches of 128.
let exampleVae (folder: string) (train: torch.Tensor) (latent: int) (epochs: int) =
    let name = $"vae-400-z{latent}-n{train.shape.[0]}-e{epochs}"
    vae folder name (fun () ->
        let model = new Vae.VariationalAutoencoder({ Vae.defaults 784 latent with Device = "auto" })
        model.Fit(train, { Training.defaults with Epochs = epochs; Progress = epochLog name; TensorBoard = tensorBoard folder name }) |> ignore
        model)

/// Figure 5 of the paper: random samples from VAEs of MNIST with latent spaces of different sizes.
module Reproduce.Fig5Samples

open System.IO
open TorchSharp
open Research.Core

/// The latent sizes of the figure.
let latentSizes = [ 2; 5; 10; 20 ]

/// Trains (or loads from `cache`) a VAE for each N_z in latentSizes for `epochs` epochs, draws 100
/// samples z ~ N(0, I) from each and writes their decoder means E[x|z] to `figures`/fig5_samples.png,
/// one 10 × 10 panel per N_z. Returns the path.
let run (cache: string) (figures: string) (train: torch.Tensor) (epochs: int) =
    let panels =
        [ for latent in latentSizes ->
            use vae = RunCache.mnistVae cache train latent epochs
            use samples = vae.Sample(100, 0)
            $"N_z = {latent}, {Plots.epochs epochs}", Interop.toArray2D samples ]
    Plots.imageGrids (Path.Combine(figures, "fig5_samples.png")) panels 10 2

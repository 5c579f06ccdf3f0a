/// Figure 4 of the paper: the learned MNIST manifold of a VAE with a two-dimensional latent space.
module Reproduce.Fig4Manifold

open System.IO
open MathNet.Numerics.Distributions
open TorchSharp
open Research.Core

/// Trains (or loads from `cache`) the N_z = 2 VAE for `epochs` epochs and writes to `figures`:
/// fig4_manifold.png, the decoder means E[x|z] on a 20 × 20 grid of z (linearly spaced points of the
/// open unit square mapped through the inverse Gaussian CDF, as in the paper), and fig4_latent.png,
/// the posterior means of the test images coloured by digit. Returns the paths.
let run (cache: string) (figures: string) (train: torch.Tensor) (test: torch.Tensor) (testLabels: int[]) (epochs: int) =
    use vae = RunCache.mnistVae cache train 2 epochs
    let n = 20
    let z = Array.init n (fun i -> Normal.InvCDF(0.0, 1.0, (float i + 0.5) / float n))
    // Picture row r (top first) has z₂ = z[n − 1 − r]; column c has z₁ = z[c].
    let codes = Array2D.init (n * n) 2 (fun k j -> float32 (if j = 0 then z.[k % n] else z.[n - 1 - k / n]))
    use codes = Interop.ofArray2D codes torch.CPU
    use means = vae.Decode codes
    let label (v: float) = v.ToString("F2", System.Globalization.CultureInfo.InvariantCulture)
    let manifold =
        Plots.imageGrid (Path.Combine(figures, "fig4_manifold.png"))
            $"Learned MNIST manifold, N_z = 2, {Plots.epochs epochs}: E[x|z] on a grid of z"
            (Interop.toArray2D means) n
            { Rows = [ for r in 0 .. n - 1 -> label z.[n - 1 - r] ]; Columns = [ for c in 0 .. n - 1 -> label z.[c] ]
              RowAxis = "z₂"; ColumnAxis = "z₁" }
    let mu, logVar = vae.Encode test
    use _l = logVar
    use mu = mu
    let m = Interop.toArray2D mu
    let latent =
        Plots.scatterByDigit (Path.Combine(figures, "fig4_latent.png"))
            $"Posterior means of the {test.shape.[0]} test digits, N_z = 2" "z₁" "z₂"
            (Array.init (Array2D.length1 m) (fun i -> float m.[i, 0]))
            (Array.init (Array2D.length1 m) (fun i -> float m.[i, 1]))
            testLabels
    [ manifold; latent ]

/// Originals above their reconstructions by PCA, linear AE, deep AE and VAE at the same latent size.
module Reproduce.Reconstructions

open System.IO
open TorchSharp
open Research.Core

/// The first test image of each digit 0–9, in digit order.
let oneOfEachDigit (test: torch.Tensor) (labels: int[]) =
    let rows = [| for d in 0 .. 9 -> int64 (Array.findIndex ((=) d) labels) |]
    use index = torch.tensor(rows)
    test.index_select(0L, index)

/// Writes `figures`/reconstructions.png: ten test digits, then their reconstructions by each model of the
/// sweep at N_z = `latent` (loaded from `cache`). Returns the path.
let run (budget: LatentSweep.Budget) (cache: string) (figures: string) (train: torch.Tensor) (test: torch.Tensor) (labels: int[]) (latent: int) =
    use x = oneOfEachDigit test labels
    let pca = Pca.fit train latent
    use linear = RunCache.linearAe cache train latent budget.LinearEpochs
    use deep = RunCache.deepAe cache train latent budget.DeepEpochs
    use vae = RunCache.exampleVae cache train latent budget.VaeEpochs
    use codes = Pca.transform pca x
    let rows =
        [ "original", x.alias ()
          "PCA", Pca.inverseTransform pca codes
          "linear AE", (linear.Reconstruct x).clamp(0.0f.ToScalar(), 1.0f.ToScalar())
          "deep AE", deep.Reconstruct x
          "VAE", vae.Reconstruct x ]
    use grid = torch.cat([| for _, r in rows -> r.cpu() |], 0L).clamp(0.0f.ToScalar(), 1.0f.ToScalar())
    let path =
        Plots.imageGrid (Path.Combine(figures, "reconstructions.png"))
            $"Test digits and their reconstructions, N_z = {latent}" (Interop.toArray2D grid) 10
            { Plots.unlabelled with Rows = List.map fst rows }
    for _, r in rows do r.Dispose()
    path

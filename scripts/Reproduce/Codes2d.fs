/// The two-dimensional codes of the test set from PCA, the deep AE and the VAE, side by side.
module Reproduce.Codes2d

open System.IO
open TorchSharp
open Research.Core

let private columns (codes: torch.Tensor) =
    let m = Interop.toArray2D codes
    Array.init (Array2D.length1 m) (fun i -> float m.[i, 0]), Array.init (Array2D.length1 m) (fun i -> float m.[i, 1])

/// Writes `figures`/codes_2d.png: PCA scores, deep AE codes and VAE posterior means (N_z = 2, models
/// from the sweep in `cache`) of the first `count` test images, coloured by digit. Returns the path.
let run (budget: LatentSweep.Budget) (cache: string) (figures: string) (train: torch.Tensor) (test: torch.Tensor) (labels: int[]) (count: int64) =
    use x = test.narrow(0L, 0L, count)
    let shown = labels.[0 .. int count - 1]
    let pca = Pca.fit train 2
    use deep = RunCache.deepAe cache train 2 budget.DeepEpochs
    use vae = RunCache.exampleVae cache train 2 budget.VaeEpochs
    use pcaCodes = Pca.transform pca x
    use aeCodes = deep.Encode x
    let mu, logVar = vae.Encode x
    use _l = logVar
    use mu = mu
    let draw title codes =
        let xs, ys = columns codes
        fun plot -> Plots.drawScatterByDigit plot title "code 1" "code 2" xs ys shown
    Plots.panels (Path.Combine(figures, "codes_2d.png"))
        [ draw $"PCA scores ({count} test digits)" pcaCodes
          draw "Deep AE 784-256-64-2 codes" aeCodes
          draw "VAE 784-400-2 posterior means" mu ]
        3 700 620

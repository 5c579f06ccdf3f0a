/// A walk through the latent space of the N_z = 20 VAE, from a test 4 to a test 9.
module Reproduce.Interpolation

open System.IO
open TorchSharp
open Research.Core

/// Trains (or loads from `cache`) the N_z = 20 VAE for `epochs` epochs, takes the first 4 and the
/// first 9 of the test set, decodes 10 evenly spaced points (1 − t) μ₄ + t μ₉, t = 0, 1/9, …, 1, between
/// their posterior means, and writes `figures`/interpolation.png: the test 4, the 10 decoder means, the
/// test 9. Returns the path.
let run (cache: string) (figures: string) (train: torch.Tensor) (test: torch.Tensor) (testLabels: int[]) (epochs: int) =
    use vae = RunCache.mnistVae cache train 20 epochs
    let first digit = int64 (Array.findIndex ((=) digit) testLabels)
    use x4 = test.narrow(0L, first 4, 1L)
    use x9 = test.narrow(0L, first 9, 1L)
    let posteriorMean x =
        let mu, logVar = vae.Encode x
        logVar.Dispose()
        mu
    use mu4 = posteriorMean x4
    use mu9 = posteriorMean x9
    let steps = 10
    use t = torch.linspace(0.0, 1.0, int64 steps, device = mu4.device).unsqueeze(1L)
    use codes = mu4 + t * (mu9 - mu4)
    use means = vae.Decode codes
    use row = torch.cat([| x4; means.cpu(); x9 |], 0L)
    let weight i = (float i / float (steps - 1)).ToString("0.##", System.Globalization.CultureInfo.InvariantCulture)
    Plots.imageGrid (Path.Combine(figures, "interpolation.png"))
        $"From a test 4 to a test 9 through the posterior means, N_z = 20, {Plots.epochs epochs}"
        (Interop.toArray2D row) (steps + 2)
        { Plots.unlabelled with Columns = "test 4" :: [ for i in 0 .. steps - 1 -> weight i ] @ [ "test 9" ]; ColumnAxis = "t" }

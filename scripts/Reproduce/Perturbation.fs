/// What single latent coordinates and the posterior spread do: a test digit decoded with one posterior
/// mean shifted at a time, and decoded from samples of a posterior whose spread is scaled.
module Reproduce.Perturbation

open System.Globalization
open System.IO
open TorchSharp
open Research.Core

let private label (v: float) = v.ToString("+0.#;−0.#;0", CultureInfo.InvariantCulture)

/// Writes `figures`/perturb_mean.png (rows: the `dims` latent dimensions whose posterior means vary most
/// over the test set; columns: the mean shifted by −3 … +3 prior standard deviations) and
/// perturb_variance.png (rows: the posterior standard deviations scaled by 0, ½, 1, 2, 4; columns: ten
/// draws) for the first test image, with the sweep's VAE at N_z = `latent`. Returns the paths.
let run (budget: LatentSweep.Budget) (cache: string) (figures: string) (train: torch.Tensor) (test: torch.Tensor) (latent: int) (dims: int) =
    use vae = RunCache.exampleVae cache train latent budget.VaeEpochs
    let mu, logVar = vae.Encode test
    use mu = mu
    use logVar = logVar
    // The most used coordinates are those whose posterior means spread most across the data.
    use spread = mu.std([| 0L |])
    let struct (_, order) = spread.topk(dims)
    use order = order
    let active = Interop.toDoubleArray (order.to_type(torch.ScalarType.Float64)) |> Array.map int
    use mu0 = mu.narrow(0L, 0L, 1L)
    use sigma0 = logVar.narrow(0L, 0L, 1L).mul(0.5f.ToScalar()).exp()
    let offsets = [ -3.0; -2.0; -1.0; -0.5; 0.0; 0.5; 1.0; 2.0; 3.0 ]
    use shifted =
        torch.cat([| for d in active do
                       for o in offsets ->
                           let z = mu0.clone()
                           z.[0L, int64 d] <- z.[0L, int64 d] + o
                           z |], 0L)
    use means = vae.Decode shifted
    let meanPath =
        Plots.imageGrid (Path.Combine(figures, "perturb_mean.png"))
            $"Shifting one posterior mean (VAE N_z = {latent})" (Interop.toArray2D means) offsets.Length
            { Rows = [ for d in active -> $"z{d + 1}" ]; Columns = List.map label offsets
              RowAxis = "latent dimension"; ColumnAxis = "shift (prior standard deviations)" }
    let scales = [ 0.0; 0.5; 1.0; 2.0; 4.0 ]
    use g = new torch.Generator(0UL, mu0.device)
    use draws =
        torch.cat([| for s in scales ->
                        use eps = torch.randn([| 10L; int64 latent |], device = mu0.device, generator = g)
                        mu0 + eps * sigma0 * s |], 0L)
    use decoded = vae.Decode draws
    let variancePath =
        Plots.imageGrid (Path.Combine(figures, "perturb_variance.png"))
            $"Posterior draws, spread scaled (VAE N_z = {latent})" (Interop.toArray2D decoded) 10
            { Plots.unlabelled with Rows = [ for s in scales -> $"σ × {s}" ]; RowAxis = "posterior spread" }
    [ meanPath; variancePath ]

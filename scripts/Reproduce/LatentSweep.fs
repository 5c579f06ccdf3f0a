/// PCA, linear AE, deep AE and VAE at latent sizes 2 … 50 on MNIST: test reconstruction error, how close
/// each linear AE comes to PCA's subspace, and the VAE's test ELBO and importance-weighted log-likelihood.
module Reproduce.LatentSweep

open System
open System.IO
open TorchSharp
open Research.Core

/// The budgets of the sweep.
type Budget = { Sizes: int list; LinearEpochs: int; DeepEpochs: int; VaeEpochs: int; ImportanceSamples: int; ScoredImages: int64 }

/// The settings the results are reported at.
let full = { Sizes = [ 2; 5; 10; 20; 50 ]; LinearEpochs = 20; DeepEpochs = 5; VaeEpochs = 10; ImportanceSamples = 5000; ScoredImages = 1000L }
/// A few seconds of each, to check that everything runs end to end.
let quick = { Sizes = [ 2; 20 ]; LinearEpochs = 1; DeepEpochs = 1; VaeEpochs = 1; ImportanceSamples = 20; ScoredImages = 100L }

/// One latent size's figures.
type Row =
    { Latent: int; PcaMse: float; LinearMse: float; LinearAngle: float; DeepMse: float; VaeMse: float
      VaeElbo: float; VaeLogLikelihood: float
      /// Latent dimensions whose posterior mean varies over the test set (Burda et al.'s Cov_x E_q[z_j|x] > 10⁻²).
      VaeActiveUnits: int }

let private log = Log.line

/// The row space of a linear decoder: g(e_i) − g(0) for the unit codes e_i.
let decoderSpan (ae: Autoencoder.Autoencoder) (latent: int) =
    use eye = torch.eye(int64 latent)
    use zero = torch.zeros(1L, int64 latent)
    use ge = ae.Decode eye
    use g0 = ae.Decode zero
    ge - g0

/// Mean squared error per pixel of the VAE's reconstructions (decoded posterior means).
let private vaeMse (vae: Vae.VariationalAutoencoder) (x: torch.Tensor) =
    use r = vae.Reconstruct x
    use xd = x.``to``(r.device)
    torch.nn.functional.mse_loss(r, xd).item<float32> () |> float

/// Burda et al.'s threshold on the variance of a posterior mean over the data for an active unit.
let activeThreshold = 1e-2

/// Trains (or loads from `cache`) every model of the sweep and measures it on `test`.
let run (budget: Budget) (cache: string) (train: torch.Tensor) (test: torch.Tensor) : Row list =
    [ for i, latent in List.indexed budget.Sizes ->
        Log.fraction i budget.Sizes.Length
        log $"Latent size {latent}"
        let pca = Pca.fit train latent
        use linear = RunCache.linearAe cache train latent budget.LinearEpochs
        use deep = RunCache.deepAe cache train latent budget.DeepEpochs
        use vae = RunCache.exampleVae cache train latent budget.VaeEpochs
        use span = decoderSpan linear latent
        use scored = test.narrow(0L, 0L, budget.ScoredImages)
        log $"  VAE: importance-weighted log-likelihood, K = {budget.ImportanceSamples} on {budget.ScoredImages} test images"
        { Latent = latent
          PcaMse = Pca.reconstructionError pca test
          LinearMse = linear.ReconstructionError test
          LinearAngle = Subspace.principalAngles span pca.Components |> Array.max
          DeepMse = deep.ReconstructionError test
          VaeMse = vaeMse vae test
          VaeElbo = vae.Elbo(test, 1, 0)
          VaeLogLikelihood = vae.LogLikelihood(scored, budget.ImportanceSamples, 0)
          VaeActiveUnits = vae.ActiveUnits(test, activeThreshold) } ]

/// Writes latent_sweep.csv and .md to `results` and latent_sweep.png (test MSE against latent size)
/// to `figures`. Returns the paths.
let write (budget: Budget) (testCount: int64) (results: string) (figures: string) (rows: Row list) =
    Directory.CreateDirectory results |> ignore
    let inv = Globalization.CultureInfo.InvariantCulture
    let f (v: float) = v.ToString("G6", inv)
    let csv = Path.Combine(results, "latent_sweep.csv")
    File.WriteAllLines(csv,
        "latent,pca_mse,linear_ae_mse,linear_ae_max_angle_deg,deep_ae_mse,vae_mse,vae_test_elbo,vae_iw_log_likelihood,vae_active_units"
        :: [ for r in rows -> String.Join(",", [ string r.Latent; f r.PcaMse; f r.LinearMse; f r.LinearAngle; f r.DeepMse; f r.VaeMse; f r.VaeElbo; f r.VaeLogLikelihood; string r.VaeActiveUnits ]) ])
    let md = Path.Combine(results, "latent_sweep.md")
    File.WriteAllLines(md,
        [ "| N_z | PCA MSE | linear AE MSE | linear AE vs PCA, largest angle (°) | deep AE MSE | VAE MSE | VAE test ELBO (nats) | VAE log p(x), IW (nats) | VAE active units |"
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|" ]
        @ [ for r in rows -> $"| {r.Latent} | {f r.PcaMse} | {f r.LinearMse} | {f r.LinearAngle} | {f r.DeepMse} | {f r.VaeMse} | {f r.VaeElbo} | {f r.VaeLogLikelihood} | {r.VaeActiveUnits} of {r.Latent} |" ]
        @ [ ""; $"MSE: mean squared error per pixel on the {testCount} test images. Linear AE: {Plots.epochs budget.LinearEpochs}; deep AE 784-256-64-N_z: {Plots.epochs budget.DeepEpochs}; VAE 784-400-N_z: {Plots.epochs budget.VaeEpochs}; all Adam 1e-3, minibatches of 128. IW: K = {budget.ImportanceSamples} importance samples on the first {budget.ScoredImages} test images. Active units: latent dimensions j with Cov_x(E_q[z_j|x]) > {activeThreshold} over the test images (Burda et al. 2016)." ])
    let xs = rows |> List.map (fun r -> float r.Latent) |> Array.ofList
    let series name pick = name, xs, rows |> List.map pick |> Array.ofList
    let png =
        Plots.lineLogXTicksAt (Path.Combine(figures, "latent_sweep.png"))
            "Test reconstruction error against latent size (MNIST)" "latent size N_z (log scale)" "MSE per pixel" (List.ofArray xs)
            [ series "PCA" (fun r -> r.PcaMse); series "linear AE" (fun r -> r.LinearMse)
              series "deep AE 784-256-64-N_z" (fun r -> r.DeepMse); series "VAE 784-400-N_z (posterior mean)" (fun r -> r.VaeMse) ]
    [ csv; md; png ]

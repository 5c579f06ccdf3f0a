/// PCA, linear AE, deep AE and VAE on MNIST at the foundation settings, compared on the test set.
module Reproduce.Comparison

open System
open System.IO
open TorchSharp
open Research.Core

/// One row of the comparison table.
type Row = { Model: string; Setting: string; Metric: string; Value: float; Reference: string }

let private log (s: string) = printfn "[%s] %s" (DateTime.Now.ToString "HH:mm:ss") s

let private progress name (r: Training.EpochReport) =
    let v = r.ValidationLoss |> Option.map (sprintf ", test %.4f") |> Option.defaultValue ""
    log $"  {name} epoch {r.Epoch}: train loss {r.TrainLoss:F4}{v} ({r.Elapsed.TotalSeconds:F1} s)"

/// Trains the four models and returns the table's rows.
let run (out: string) (train: torch.Tensor) (test: torch.Tensor) : Row list =
    let rows = ResizeArray<Row>()
    let add model setting metric value reference =
        rows.Add { Model = model; Setting = setting; Metric = metric; Value = value; Reference = reference }
        log $"{model} ({setting}): {metric} = {value:G6}"

    // PCA
    log "PCA: fitting k = 50, 20, 10 on 60000 training images"
    let pca50 = Pca.fit train 50
    Directory.CreateDirectory out |> ignore
    File.WriteAllLines(Path.Combine(out, "pca_explained_variance.csv"),
        "component,explained_variance,explained_variance_ratio"
        :: [ for i in 0 .. 49 -> sprintf "%d,%.10g,%.10g" (i + 1) pca50.ExplainedVariance.[i] pca50.ExplainedVarianceRatio.[i] ])
    add "PCA" "k = 50" "explained variance ratio (sum)" (Array.sum pca50.ExplainedVarianceRatio) "scikit-learn: see bench"
    use gram = pca50.Components.matmul(pca50.Components.t())
    use eye = torch.eye(50L)
    add "PCA" "k = 50" "max abs(C Cᵀ − I) (orthonormality)" ((gram - eye).abs().max().item<float32> () |> float) "0"
    add "PCA" "k = 50" "test MSE per pixel" (Pca.reconstructionError pca50 test) ""
    let pca20 = Pca.fit train 20
    let pca10 = Pca.fit train 10
    let pca10Error = Pca.reconstructionError pca10 test
    let pca20Error = Pca.reconstructionError pca20 test
    add "PCA" "k = 20" "test MSE per pixel" pca20Error ""
    add "PCA" "k = 10" "test MSE per pixel" pca10Error ""

    // Linear AE, k = 10: Baldi & Hornik say it should find PCA's subspace and error.
    log "Linear AE k = 10: 20 epochs, Adam 1e-3, batch 128"
    use linear =
        new Autoencoder.Autoencoder({ InputSize = 784; LatentSize = 10; HiddenSizes = []; Linear = true; Seed = 0; Device = "auto" })
    linear.Fit(train, { Training.defaults with Epochs = 20; Progress = progress "linear AE" }) |> ignore
    let linearError = linear.ReconstructionError test
    add "Linear AE" "k = 10, 20 epochs" "test MSE per pixel" linearError $"PCA k = 10: {pca10Error:G6}"
    add "Linear AE" "k = 10, 20 epochs" "test MSE / PCA k = 10 MSE" (linearError / pca10Error) "target ≤ 1.03"
    let span =
        use eye = torch.eye(10L)
        use zero = torch.zeros(1L, 10L)
        use ge = linear.Decode eye
        use g0 = linear.Decode zero
        ge - g0
    let angles = Subspace.principalAngles span pca10.Components
    add "Linear AE" "k = 10, 20 epochs" "largest principal angle to PCA (degrees)" (Array.max angles) "a few degrees"

    // Deep AE 784-256-64-20
    log "AE 784-256-64-20: 5 epochs, Adam 1e-3, batch 128"
    use deep =
        new Autoencoder.Autoencoder({ InputSize = 784; LatentSize = 20; HiddenSizes = [ 256; 64 ]; Linear = false; Seed = 0; Device = "auto" })
    deep.Fit(train, { Training.defaults with Epochs = 5; Progress = progress "AE" }) |> ignore
    let deepError = deep.ReconstructionError test
    add "Deep AE" "784-256-64-20, 5 epochs" "test MSE per pixel" deepError $"PCA k = 20: {pca20Error:G6}"

    // VAE 784-400-20, the PyTorch example's setting.
    log "VAE 784-400-20 Bernoulli: 10 epochs, Adam 1e-3, batch 128"
    use vae = new Vae.VariationalAutoencoder({ Vae.defaults 784 20 with Device = "auto" })
    vae.Fit(train, { Training.defaults with Epochs = 10; Progress = progress "VAE" }) |> ignore
    let negElbo = -(vae.Elbo(test, 1, 0))
    add "VAE" "784-400-20, 10 epochs" "test −ELBO per example (nats)" negElbo "PyTorch example: 105.7"
    use first1000 = test.narrow(0L, 0L, 1000L)
    log "VAE: importance-weighted log-likelihood, K = 1000 on the first 1000 test images"
    let nll = -(vae.LogLikelihood(first1000, 1000, 0))
    add "VAE" "784-400-20, 10 epochs" "test −log p(x), IW K = 1000, 1000 images (nats)" nll "PyTorch example: about 100.0"
    add "VAE" "784-400-20, 10 epochs" "test −ELBO, same 1000 images (nats)" (-(vae.Elbo(first1000, 1, 0))) "above the IW figure"
    List.ofSeq rows

/// Writes the rows as CSV and as a Markdown table.
let write (folder: string) (rows: Row list) =
    Directory.CreateDirectory folder |> ignore
    let csv = Path.Combine(folder, "comparison.csv")
    let md = Path.Combine(folder, "comparison.md")
    let q (s: string) = "\"" + s.Replace("\"", "\"\"") + "\""
    let inv = Globalization.CultureInfo.InvariantCulture
    File.WriteAllLines(csv,
        "model,setting,metric,value,reference"
        :: [ for r in rows -> String.Join(",", q r.Model, q r.Setting, q r.Metric, r.Value.ToString("R", inv), q r.Reference) ])
    File.WriteAllLines(md,
        "| model | setting | metric | value | reference |" :: "|---|---|---|---:|---|"
        :: [ for r in rows -> sprintf "| %s | %s | %s | %s | %s |" r.Model r.Setting r.Metric (r.Value.ToString("G6", inv)) r.Reference ])
    csv, md

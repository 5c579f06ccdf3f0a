/// PCA, linear AE, deep AE and VAE on MNIST at the foundation settings, compared on the test set.
module Reproduce.Comparison

open System
open System.IO
open TorchSharp
open Research.Core

/// One row of the comparison table.
type Row = { Model: string; Setting: string; Metric: string; Value: float; Reference: string }

let private log = Log.line

/// Training budgets: the foundation's settings, or a smoke-test budget for --quick.
type Budget = { LinearEpochs: int; DeepEpochs: int; VaeEpochs: int; ImportanceSamples: int; ScoredImages: int64; LinearVaeEpochs: int }

/// The settings the results are reported at.
let full = { LinearEpochs = 20; DeepEpochs = 5; VaeEpochs = 10; ImportanceSamples = 1000; ScoredImages = 1000L; LinearVaeEpochs = 100 }
/// A few seconds of each, to check that everything runs end to end.
let quick = { LinearEpochs = 2; DeepEpochs = 1; VaeEpochs = 1; ImportanceSamples = 50; ScoredImages = 200L; LinearVaeEpochs = 3 }

/// Trains the four models and returns the table's rows.
let run (budget: Budget) (cache: string) (out: string) (train: torch.Tensor) (test: torch.Tensor) : Row list =
    let rows = ResizeArray<Row>()
    let add model setting metric value reference =
        rows.Add { Model = model; Setting = setting; Metric = metric; Value = value; Reference = reference }
        log $"{model} ({setting}): {metric} = {value:G6}"

    // PCA
    log $"PCA: fitting k = 50, 20, 10 on {train.shape.[0]} training images"
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
    Log.fraction 1 6
    log $"Linear AE k = 10: {budget.LinearEpochs} epochs, Adam 1e-3, batch 128"
    use linear = RunCache.linearAe cache train 10 budget.LinearEpochs
    let linearError = linear.ReconstructionError test
    add "Linear AE" $"k = 10, {budget.LinearEpochs} epochs" "test MSE per pixel" linearError $"PCA k = 10: {pca10Error:G6}"
    add "Linear AE" $"k = 10, {budget.LinearEpochs} epochs" "test MSE / PCA k = 10 MSE" (linearError / pca10Error) "target ≤ 1.03"
    use span = LatentSweep.decoderSpan linear 10
    let angles = Subspace.principalAngles span pca10.Components
    add "Linear AE" $"k = 10, {budget.LinearEpochs} epochs" "largest principal angle to PCA (degrees)" (Array.max angles) "a few degrees"

    // Deep AE 784-256-64-20
    Log.fraction 2 6
    log $"AE 784-256-64-20: {budget.DeepEpochs} epochs, Adam 1e-3, batch 128"
    use deep = RunCache.deepAe cache train 20 budget.DeepEpochs
    let deepError = deep.ReconstructionError test
    add "Deep AE" $"784-256-64-20, {budget.DeepEpochs} epochs" "test MSE per pixel" deepError $"PCA k = 20: {pca20Error:G6}"

    // VAE 784-400-20, the PyTorch example's setting.
    let vaeSetting = $"784-400-20, {budget.VaeEpochs} epochs"
    Log.fraction 3 6
    log $"VAE 784-400-20 Bernoulli: {budget.VaeEpochs} epochs, Adam 1e-3, batch 128"
    use vae = RunCache.exampleVae cache train 20 budget.VaeEpochs
    let negElbo = -(vae.Elbo(test, 1, 0))
    add "VAE" vaeSetting "test −ELBO per example (nats)" negElbo "PyTorch example: 105.7"
    let k, m = budget.ImportanceSamples, budget.ScoredImages
    use first = test.narrow(0L, 0L, m)
    Log.fraction 4 6
    log $"VAE: importance-weighted log-likelihood, K = {k} on the first {m} test images"
    let nll = -(vae.LogLikelihood(first, k, 0))
    add "VAE" vaeSetting $"test −log p(x), IW K = {k}, {m} images (nats)" nll "PyTorch example: about 100.0"
    add "VAE" vaeSetting $"test −ELBO, same {m} images (nats)" (-(vae.Elbo(first, 1, 0))) "above the IW figure"

    // Linear VAE on data from a PPCA model: Lucas et al. say it reaches PPCA's maximum likelihood, with a tight ELBO.
    Log.fraction 5 6
    let p, k, n = 16, 3, 2000
    log $"Linear VAE on PPCA data (P = {p}, k = {k}, N = {n}): {6 * budget.LinearVaeEpochs} epochs of Adam in 4 stages (LinearVae.fitToOptimum)"
    use g = new torch.Generator(2024UL)
    let truth : ProbabilisticPca.PpcaModel =
        { Mean = torch.randn([| int64 p |], dtype = torch.float64, generator = g)
          W = torch.randn([| int64 p; int64 k |], dtype = torch.float64, generator = g)
          Sigma2 = 0.25 }
    use x = (use x64 = ProbabilisticPca.sample truth n g in x64.to_type(torch.float32))
    let ppca = ProbabilisticPca.fit x k
    let exact = ProbabilisticPca.meanLogLikelihood ppca x
    use linearVae = LinearVae.create p k 0
    LinearVae.fitToOptimum linearVae x budget.LinearVaeEpochs
    let logP = linearVae.LogLikelihood(x, 1000, 0)
    let elbo = linearVae.Elbo(x, 100, 0)
    let sigma2 = LinearVae.noiseVariance linearVae
    let setting = $"PPCA data, P = {p}, k = {k}, N = {n}; {6 * budget.LinearVaeEpochs} epochs in 4 stages"
    add "Linear VAE" setting "PPCA's exact maximum mean log-likelihood (nats)" exact "closed form (Tipping & Bishop)"
    add "Linear VAE" setting "mean log p(x), IW K = 1000 (nats)" logP "PPCA's maximum at the optimum"
    add "Linear VAE" setting "mean ELBO, L = 100 (nats)" elbo "tight at the optimum (Lucas et al. 2019)"
    add "Linear VAE" setting "PPCA maximum − log p(x) (nats)" (exact - logP) "0 at the optimum"
    add "Linear VAE" setting "log p(x) − ELBO (nats)" (logP - elbo) "0 at the optimum"
    add "Linear VAE" setting "learned σ² / PPCA's σ²" (sigma2 / ppca.Sigma2) "1"
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
    // What the linear-VAE rows show, in words, for paper.md.
    let value (metric: string) = rows |> List.tryFind (fun r -> r.Model = "Linear VAE" && r.Metric.StartsWith metric) |> Option.map (fun r -> r.Value)
    match value "PPCA maximum − log p", value "log p(x) − ELBO", value "learned σ²" with
    | Some gapP, Some gapElbo, Some ratio ->
        let reached = if abs gapP <= 0.01 then "reaches PPCA's exact maximum likelihood" else "does not reach PPCA's exact maximum likelihood"
        let tight = if abs gapElbo <= 0.02 then "its ELBO is tight there" else "its ELBO is not tight"
        File.WriteAllText(Path.Combine(folder, "linear_vae_ppca.md"),
            String.Format(inv, "The linear VAE (Lucas et al. 2019: linear encoder, linear Gaussian decoder with one shared learned variance; `LinearVae`), trained on data drawn from a PPCA model, {0} (the gap is {1:F4} nats per example) and {2} (log p(x) − ELBO = {3:F4} nats); its learned noise variance is {4:F3} × PPCA's. With the linear AE's PCA subspace above, this is the linear end of the comparison: the linear VAE is probabilistic PCA, trained by its bound.", reached, gapP, tight, gapElbo, ratio))
    | _ -> ()
    csv, md

/// Figure 3 of the paper: the estimated marginal log-likelihood against training samples evaluated, for
/// small and large training sets, AEVB against wake-sleep and Monte Carlo EM. The plotted estimate is the
/// paper's own, Appendix D's (MarginalLikelihood.estimate: HMC samples of the posterior, a Gaussian fitted
/// to them, the reciprocal estimate on fresh samples); the importance-weighted estimate
/// log (1/K) Σ p(x, z_k)/q(z_k|x) with the model's encoder is kept beside it in the CSV as a cross-check.
/// MCEM does not train its encoder, so its IW column uses the untrained one (close to the prior): a loose
/// lower bound, not a measure of MCEM.
module Reproduce.Fig3Marginal

open System
open System.Globalization
open System.IO
open TorchSharp
open Research.Core
open Reproduce.PaperModels

/// N_z = 3 and 100 hidden units, as in the paper; the paper's two training set sizes.
let latent = 3
let hidden = 100
let trainSizes = [ 1000L; 50000L ]

/// The Appendix D estimator as Figure 3 runs it, cut from MarginalLikelihood.defaults to fit the budget:
/// 4 chains per image (from 200 prior draws), 20 warm-up transitions whose step-size adaptation (e^(±0.2) a
/// transition) can still reach any ε within e^(±4) of the first, L = 4 × 10 = 40 samples per stage.
let estimator =
    { MarginalLikelihood.defaults with
        Chains = 4; WarmUp = 20; Transitions = 10
        Adaptation = { MarginalLikelihood.defaults.Adaptation with Rate = 0.2 } }

/// Images of the training set and of the test set (the first ones) on which the Appendix D estimate is taken;
/// the IW estimate uses 1000 of each. The same images at every point, so that the curves compare paired.
let estimatedRows = 50L

/// MCEM trains for at most this many samples: each of its minibatches costs about ten of AEVB's (10
/// leapfrog steps and 5 decoder updates; about 1.5 ms a sample on this 2-core machine, 3.8 ms under load),
/// and the whole figure must stay within about 15 minutes.
let mcemBudget = 50_000L

/// The samples after which the estimates are taken, with whether the Appendix D estimate is (the IW one
/// always is). See run.
type Point =
    { Algorithm: string; TrainSize: int64; Samples: int64
      /// The Appendix D estimate on the training and the test images (NaN where not taken).
      Train: float; Test: float
      /// The IW estimate (K importance samples from q(z|x)) on the training and the test images.
      TrainIw: float; TestIw: float }

let private log = Log.line
let private inv = CultureInfo.InvariantCulture
let private header = "algorithm,train_size,samples,train_log_likelihood,test_log_likelihood,train_iw,test_iw"
let private number (x: float) = if Double.IsFinite x then x.ToString("R", inv) else ""
let private toLine p =
    String.Join(",", p.Algorithm, string p.TrainSize, string p.Samples, number p.Train, number p.Test, number p.TrainIw, number p.TestIw)
let private ofLine (l: string) =
    let c = l.Split ','
    let parse (s: string) = if s = "" then nan else Double.Parse(s, inv)
    { Algorithm = c.[0]; TrainSize = int64 c.[1]; Samples = int64 c.[2]; Train = parse c.[3]; Test = parse c.[4]
      TrainIw = parse c.[5]; TestIw = parse c.[6] }

/// Sample counts at which the IW estimate is taken: 1, 2 and 5 times powers of ten up to the budget.
let checkpoints (budget: int64) =
    [ for e in 3 .. 9 do for m in [ 1L; 2L; 5L ] -> m * pown 10L e ] |> List.filter (fun s -> s <= budget)

/// Whether the Appendix D estimate is taken too, at the point after `seen` samples: at powers of ten and at
/// the end of the curve (it costs about 40 times as much as the IW estimate per image).
let private estimatedAt (budget: int64) (seen: int64) =
    seen >= budget || (let l = Math.Log10(float seen) in abs (l - Math.Round l) < 1e-9)

/// The Appendix D estimate's mean over `rows`, seeded so every point sees the same chains' noise, and the
/// mean HMC acceptance rate (which shows whether the chains moved).
let appendixD (model: Vae.VariationalAutoencoder) (rows: torch.Tensor) =
    use x = model.Networks.ToDevice rows
    use g = new torch.Generator(0UL, model.Networks.Device)
    let e = MarginalLikelihood.estimate g estimator latent model.Model x
    try e.LogMarginal.mean().item<float> (), e.AcceptanceRate.mean().item<float> ()
    finally for t in [ e.LogMarginal; e.EffectiveSampleSize; e.AcceptanceRate; e.StepSize ] do t.Dispose()

/// One curve, read from `cache` when it was computed before.
let curve (cache: string) (searchRows: int64) (algorithm: Algorithm) (trainSize: int64) (budget: int64) (importanceSamples: int) (train: torch.Tensor) (test: torch.Tensor) =
    let budget = match algorithm with Mcem -> min budget mcemBudget | Aevb | WakeSleep -> budget
    let epochs = max 1 (int (budget / trainSize))
    let file = Path.Combine(cache, "fig3", $"{name algorithm}-n{trainSize}-s{budget}-k{importanceSamples}-d{estimatedRows}x{estimator.Chains * estimator.Transitions}.csv")
    Curves.cached file header toLine ofLine (fun () ->
        use data = train.narrow(0L, 0L, trainSize)
        let lr = stepSize searchRows algorithm latent hidden data
        log $"{name algorithm}, N = {trainSize}: step size {lr}, {epochs} epochs"
        use model = vae latent hidden
        use trainScored = data.narrow(0L, 0L, min 1000L trainSize)
        use testScored = test.narrow(0L, 0L, 1000L)
        use trainEstimated = data.narrow(0L, 0L, min estimatedRows trainSize)
        use testEstimated = test.narrow(0L, 0L, estimatedRows)
        let points = ResizeArray<Point>()
        let mutable pending = checkpoints budget
        let progress (r: Training.EpochReport) =
            match pending with
            | next :: rest when r.ExamplesSeen >= next ->
                pending <- rest |> List.filter (fun s -> s > r.ExamplesSeen)
                let estimated = estimatedAt budget r.ExamplesSeen
                let (train, trainRate), (test, testRate) =
                    if estimated then appendixD model trainEstimated, appendixD model testEstimated else (nan, nan), (nan, nan)
                let p = { Algorithm = name algorithm; TrainSize = trainSize; Samples = r.ExamplesSeen
                          Train = train; Test = test
                          TrainIw = model.LogLikelihood(trainScored, importanceSamples, 0)
                          TestIw = model.LogLikelihood(testScored, importanceSamples, 0) }
                points.Add p
                let d = if estimated then $"Appendix D train {p.Train:F2}, test {p.Test:F2} (acceptance {trainRate:F2}, {testRate:F2}); " else ""
                log $"  {name algorithm} N = {trainSize}, {r.ExamplesSeen} samples: log p(x) {d}IW train {p.TrainIw:F2}, test {p.TestIw:F2} ({r.Elapsed.TotalSeconds:F0} s)"
            | _ -> ()
        fit algorithm model data { adagrad trainSize lr epochs with Progress = progress } |> ignore
        List.ofSeq points)

/// Runs (or reads) every curve and writes `results`/fig3_marginal.csv and `figures`/fig3_marginal.png,
/// one panel per training set size, the Appendix D estimate plotted. Returns the paths and the points.
let run (cache: string) (results: string) (figures: string) (searchRows: int64) (trainSizes: int64 list) (budget: int64) (importanceSamples: int) (train: torch.Tensor) (test: torch.Tensor) =
    let runs = [ for n in trainSizes do for algorithm in [ Aevb; WakeSleep; Mcem ] -> n, algorithm ]
    let points = Curves.all runs (fun (n, algorithm) -> curve cache searchRows algorithm n budget importanceSamples train test)
    Directory.CreateDirectory results |> ignore
    let csv = Path.Combine(results, "fig3_marginal.csv")
    File.WriteAllLines(csv, header :: List.map toLine points)
    let panel n (plot: ScottPlot.Plot) =
        Curves.drawPanel plot $"N_train = {n}, N_z = {latent} (Appendix D, L = {estimator.Chains * estimator.Transitions}, {estimatedRows} images)"
            "marginal log-likelihood (nats; Appendix D)"
            (points |> List.filter (fun p -> p.TrainSize = n)) (fun p -> p.Algorithm, p.Samples, p.Train, p.Test)
    let png = Plots.panels (Path.Combine(figures, "fig3_marginal.png")) [ for n in trainSizes -> panel n ] 2 620 460
    [ csv; png ], points

/// Figure 3 of the paper: the estimated marginal log-likelihood against training samples evaluated, for
/// small and large training sets, AEVB against wake-sleep. The paper estimated log p(x) with an HMC-based
/// method; we use the importance-weighted estimate log (1/K) Σ p(x, z_k)/q(z_k|x) with the model's encoder.
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

/// The estimate after `Samples` training samples, on the training set (first 1000) and the test set (first 1000).
type Point = { Algorithm: string; TrainSize: int64; Samples: int64; Train: float; Test: float }

let private log = Log.line
let private inv = CultureInfo.InvariantCulture
let private header = "algorithm,train_size,samples,train_log_likelihood,test_log_likelihood"
let private toLine p = String.Join(",", p.Algorithm, string p.TrainSize, string p.Samples, p.Train.ToString("R", inv), p.Test.ToString("R", inv))
let private ofLine (l: string) =
    let c = l.Split ','
    { Algorithm = c.[0]; TrainSize = int64 c.[1]; Samples = int64 c.[2]; Train = Double.Parse(c.[3], inv); Test = Double.Parse(c.[4], inv) }

/// Sample counts at which the estimate is taken: 1, 2 and 5 times powers of ten up to the budget.
let checkpoints (budget: int64) =
    [ for e in 3 .. 9 do for m in [ 1L; 2L; 5L ] -> m * pown 10L e ] |> List.filter (fun s -> s <= budget)

/// One curve, read from `cache` when it was computed before.
let curve (cache: string) (searchRows: int64) (algorithm: Algorithm) (trainSize: int64) (budget: int64) (importanceSamples: int) (train: torch.Tensor) (test: torch.Tensor) =
    let epochs = int (budget / trainSize)
    let file = Path.Combine(cache, "fig3", $"{name algorithm}-n{trainSize}-s{budget}-k{importanceSamples}.csv")
    Curves.cached file header toLine ofLine (fun () ->
        use data = train.narrow(0L, 0L, trainSize)
        let lr = stepSize searchRows algorithm latent hidden data
        log $"{name algorithm}, N = {trainSize}: step size {lr}, {epochs} epochs"
        use model = vae latent hidden
        use trainScored = data.narrow(0L, 0L, min 1000L trainSize)
        use testScored = test.narrow(0L, 0L, 1000L)
        let points = ResizeArray<Point>()
        let mutable pending = checkpoints budget
        let progress (r: Training.EpochReport) =
            match pending with
            | next :: rest when r.ExamplesSeen >= next ->
                pending <- rest |> List.filter (fun s -> s > r.ExamplesSeen)
                let p = { Algorithm = name algorithm; TrainSize = trainSize; Samples = r.ExamplesSeen
                          Train = model.LogLikelihood(trainScored, importanceSamples, 0)
                          Test = model.LogLikelihood(testScored, importanceSamples, 0) }
                points.Add p
                log $"  {name algorithm} N = {trainSize}, {r.ExamplesSeen} samples: log p(x) train {p.Train:F2}, test {p.Test:F2}"
            | _ -> ()
        fit algorithm model data { adagrad trainSize lr epochs with Progress = progress } |> ignore
        List.ofSeq points)

/// Runs (or reads) every curve and writes `results`/fig3_marginal.csv and `figures`/fig3_marginal.png,
/// one panel per training set size. Returns the paths and the points.
let run (cache: string) (results: string) (figures: string) (searchRows: int64) (trainSizes: int64 list) (budget: int64) (importanceSamples: int) (train: torch.Tensor) (test: torch.Tensor) =
    let runs = [ for n in trainSizes do for algorithm in [ Aevb; WakeSleep ] -> n, algorithm ]
    let points = Curves.all runs (fun (n, algorithm) -> curve cache searchRows algorithm n budget importanceSamples train test)
    Directory.CreateDirectory results |> ignore
    let csv = Path.Combine(results, "fig3_marginal.csv")
    File.WriteAllLines(csv, header :: List.map toLine points)
    let panel n (plot: ScottPlot.Plot) =
        Curves.drawPanel plot $"N_train = {n}, N_z = {latent} (IW estimate, K = {importanceSamples})" "marginal log-likelihood (nats)"
            (points |> List.filter (fun p -> p.TrainSize = n)) (fun p -> p.Algorithm, p.Samples, p.Train, p.Test)
    let png = Plots.panels (Path.Combine(figures, "fig3_marginal.png")) [ for n in trainSizes -> panel n ] 2 620 460
    [ csv; png ], points

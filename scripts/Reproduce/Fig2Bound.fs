/// Figure 2 of the paper: the average lower bound per datapoint against the number of training samples
/// evaluated, AEVB against wake-sleep, for several latent sizes.
module Reproduce.Fig2Bound

open System
open System.Globalization
open System.IO
open TorchSharp
open Research.Core
open Reproduce.PaperModels

/// The latent sizes of the paper's figure and the hidden layer size.
let latentSizes = [ 3; 5; 10; 20; 200 ]
let hidden = 500

/// Training images on which the train bound is measured.
let scoredRows = 10000L

/// The budget: epochs over the training set, the latent sizes, and the images of the step-size search.
type Budget = { Epochs: int; Latents: int list; SearchRows: int64 }

/// The bound after `Samples` training samples, on (a subset of) the training set and on the test set.
type Point = { Algorithm: string; Latent: int; Samples: int64; Train: float; Test: float }

let private log = Log.line
let private inv = CultureInfo.InvariantCulture
let private header = "algorithm,latent,samples,train_bound,test_bound"
let private toLine p = String.Join(",", p.Algorithm, string p.Latent, string p.Samples, p.Train.ToString("R", inv), p.Test.ToString("R", inv))
let private ofLine (l: string) =
    let c = l.Split ','
    { Algorithm = c.[0]; Latent = int c.[1]; Samples = int64 c.[2]; Train = Double.Parse(c.[3], inv); Test = Double.Parse(c.[4], inv) }

/// One training curve, read from `cache` when it was computed before: the step size is chosen first,
/// then the bound is measured after every epoch (train bound on the first 10000 training images).
let curve (cache: string) (budget: Budget) (algorithm: Algorithm) (latent: int) (train: torch.Tensor) (test: torch.Tensor) =
    let epochs = budget.Epochs
    let file = Path.Combine(cache, "fig2", $"{name algorithm}-z{latent}-h{hidden}-n{train.shape.[0]}-e{epochs}.csv")
    Curves.cached file header toLine ofLine (fun () ->
        let lr = stepSize budget.SearchRows algorithm latent hidden train
        log $"{name algorithm}, N_z = {latent}: step size {lr}, {epochs} epochs"
        use model = vae latent hidden
        use trainScored = train.narrow(0L, 0L, min scoredRows train.shape.[0])
        let points = ResizeArray<Point>()
        let progress (r: Training.EpochReport) =
            let p = { Algorithm = name algorithm; Latent = latent; Samples = r.ExamplesSeen
                      Train = model.Elbo(trainScored, 1, 0); Test = -r.ValidationLoss.Value }
            points.Add p
            log $"  {name algorithm} N_z = {latent} epoch {r.Epoch}: bound train {p.Train:F2}, test {p.Test:F2}"
        fit algorithm model train { adagrad train.shape.[0] lr epochs with Validation = Some test; Progress = progress } |> ignore
        List.ofSeq points)

/// The points a default run published in `results`/fig2_bound.csv, when that file exists: paper.md's
/// Figure 2 text is written from them by the runs that do not train Figure 2 themselves.
let published (results: string) =
    let csv = Path.Combine(results, "fig2_bound.csv")
    if File.Exists csv then Some (File.ReadAllLines csv |> Array.skip 1 |> Array.map ofLine |> List.ofArray) else None

/// Runs (or reads) every curve and writes `results`/fig2_bound.csv and `figures`/fig2_bound.png, one
/// panel per latent size. Returns the paths and the points.
let run (cache: string) (results: string) (figures: string) (budget: Budget) (train: torch.Tensor) (test: torch.Tensor) =
    let runs = [ for latent in budget.Latents do for algorithm in [ Aevb; WakeSleep ] -> latent, algorithm ]
    let points = Curves.all runs (fun (latent, algorithm) -> curve cache budget algorithm latent train test)
    Directory.CreateDirectory results |> ignore
    let csv = Path.Combine(results, "fig2_bound.csv")
    File.WriteAllLines(csv, header :: List.map toLine points)
    let samples = float (int64 budget.Epochs * train.shape.[0])
    let panel latent (plot: ScottPlot.Plot) =
        Curves.drawPanel plot $"MNIST, N_z = {latent} (budget {samples:G3} samples)" "lower bound per datapoint (nats)"
            (points |> List.filter (fun p -> p.Latent = latent)) (fun p -> p.Algorithm, p.Samples, p.Train, p.Test)
    let png = Plots.panels (Path.Combine(figures, "fig2_bound.png")) [ for latent in budget.Latents -> panel latent ] 3 620 460
    [ csv; png ], points

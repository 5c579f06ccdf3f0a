/// A check of one cause of the train–test gap that our paper-budget AEVB curves open and the paper's Figure 2
/// does not show: the data. We train on MNIST's grey levels as Bernoulli targets, one fixed training set
/// that a model can fit more closely than it generalises. The paper's text does not say which it used;
/// Kingma's own later code binarises every minibatch afresh (`bernoulli_x` in the MNIST set-up of
/// dpkingma/nips14-ssl's gpulearn_z_x.py), so no image is ever seen twice. This trains AEVB N_z = 3, the
/// curve with the widest gap, as the paper-budget run does (model, initialisation, seeds, step size, weight
/// decay, one thread) but on images binarised in every minibatch, to 10^7 samples, and sets its gap beside
/// the grey-level curve's at the same epochs. The two curves' bounds are on different data and do not
/// compare with each other; their gaps do.
module Reproduce.Fig2Binarised

open System
open System.Globalization
open System.IO
open TorchSharp
open Research.Core
open Reproduce.PaperModels

/// The curve checked: AEVB at N_z = 3, to the first stage of the paper-budget run (167 epochs, 10^7 samples).
let latent = 3
let epochs = List.head Fig2PaperBudget.stages

/// One measured epoch of both curves: the bound on the scored training images and on the test set.
type Row = { Epoch: int; Samples: int64; GreyTrain: float; GreyTest: float; BinarisedTrain: float; BinarisedTest: float }

let private inv = CultureInfo.InvariantCulture
let private header = "epoch,samples,grey_train,grey_test,binarised_train,binarised_test"
let private toLine r =
    String.Join(",", string r.Epoch, string r.Samples, r.GreyTrain.ToString("R", inv), r.GreyTest.ToString("R", inv),
                r.BinarisedTrain.ToString("R", inv), r.BinarisedTest.ToString("R", inv))
let private ofLine (l: string) =
    let c = l.Split ','
    { Epoch = int c.[0]; Samples = int64 c.[1]; GreyTrain = Double.Parse(c.[2], inv); GreyTest = Double.Parse(c.[3], inv)
      BinarisedTrain = Double.Parse(c.[4], inv); BinarisedTest = Double.Parse(c.[5], inv) }

/// The file the check writes under paper/results.
let fileName = "fig2_binarised.csv"

/// Reads the check's rows from `results`, where it has run.
let read (results: string) =
    let file = Path.Combine(results, fileName)
    if File.Exists file then File.ReadAllLines file |> Array.skip 1 |> Array.map ofLine |> List.ofArray else []

/// Trains (or resumes, from runs/fig2-binarised/) the binarised curve and writes `results`/fig2_binarised.csv
/// beside the grey-level curve's points, which the paper-budget CSV must already hold up to `epochs`.
let run (cache: string) (results: string) (searchRows: int64) (train: torch.Tensor) (test: torch.Tensor) =
    let budgetCsv = Path.Combine(results, "fig2_bound_paper_budget.csv")
    let grey =
        if File.Exists budgetCsv then
            Fig2PaperBudget.read budgetCsv |> List.filter (fun p -> p.Algorithm = name Aevb && p.Latent = latent && p.Epoch <= epochs)
        else []
    if not (grey |> List.exists (fun p -> p.Epoch = epochs)) then
        failwith $"The binarisation check compares with AEVB N_z = {latent} of the paper-budget run up to epoch {epochs}, which {budgetCsv} does not hold; run `dotnet fsi build.fsx reproduce --paper-budget` first."
    // One thread, as each paper-budget curve trains, so that the two differ only in their data.
    torch.set_num_threads 1
    let binarised = Fig2PaperBudget.curve Fig2PaperBudget.Binarised cache searchRows epochs Aevb latent [] ignore train test
    let rows =
        [ for b in binarised do
            match grey |> List.tryFind (fun g -> g.Epoch = b.Epoch) with
            | Some g -> yield { Epoch = b.Epoch; Samples = b.Samples; GreyTrain = g.Train; GreyTest = g.Test; BinarisedTrain = b.Train; BinarisedTest = b.Test }
            | None -> () ]
    Directory.CreateDirectory results |> ignore
    let csv = Path.Combine(results, fileName)
    File.WriteAllLines(csv, header :: List.map toLine rows)
    let last = List.last rows
    Log.line $"At {Fig2PaperBudget.samplesText last.Samples} samples: grey levels train − test {last.GreyTrain - last.GreyTest:F2} nats, binarised {last.BinarisedTrain - last.BinarisedTest:F2}"
    [ csv ]

/// paper.md's paragraph on the check, from its rows; empty where it has not run.
let paragraph (rows: Row list) =
    if rows.IsEmpty then ""
    else
        let last = rows |> List.maxBy (fun r -> r.Epoch)
        let greyGap, binGap = last.GreyTrain - last.GreyTest, last.BinarisedTrain - last.BinarisedTest
        let opens (gap: Row -> float) =
            match rows |> List.sortBy (fun r -> r.Epoch) |> List.tryFind (fun r -> gap r > 1.0) with
            | Some r -> $"first above 1 nat at {Fig2PaperBudget.samplesText r.Samples} samples"
            | None -> "never above 1 nat"
        let greyOpens = opens (fun r -> r.GreyTrain - r.GreyTest)
        let binOpens = opens (fun r -> r.BinarisedTrain - r.BinarisedTest)
        let verdict =
            if binGap < 0.5 * greyGap then
                "Binarising the data removes most of the gap: on the grey levels the model fits the fixed training images more closely than it generalises, "
                + "and images binarised afresh in every minibatch are never seen twice. The paper's text does not say which data it used; "
                + "the bounds on binarised images are not on the scale of the grey-level ones, so this explains the gap, not the levels."
            else
                // How the gap moved over the second half of the run says whether it was still opening.
                let half = rows |> List.minBy (fun r -> abs (2 * r.Epoch - last.Epoch))
                $"Binarising the data narrows the gap by {100.0 * (1.0 - binGap / greyGap):F0}%% but does not close it "
                + $"(binarised, it went from {half.BinarisedTrain - half.BinarisedTest:F2} nats at {Fig2PaperBudget.samplesText half.Samples} samples to {binGap:F2})"
                + ": the model fits the training images more closely than it generalises whichever binarisation of them it sees, "
                + "so the grey levels are a part of the gap at most, and the data alone does not explain why the paper's curves show test ≈ train."
        $"Binarisation check (`dotnet fsi build.fsx reproduce --binarised-check`): AEVB N_z = {latent} trained as above but on images binarised "
        + $"afresh in every minibatch, and scored on one binarisation (seed {Fig2PaperBudget.scoreSeed}) of the same training images and of the test set. "
        + $"At {Fig2PaperBudget.samplesText last.Samples} samples, train − test is {greyGap:F2} nats on the grey levels ({greyOpens}) "
        + $"and {binGap:F2} nats binarised ({binOpens}; train {last.BinarisedTrain:F2}, test {last.BinarisedTest:F2}). {verdict}"

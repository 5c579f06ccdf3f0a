/// `dotnet fsi build.fsx reproduce` runs this: trains (or loads from runs/) every model, and writes the
/// figures, tables and paper.md under paper/.
module Reproduce.Program

open System
open System.Diagnostics
open System.IO
open Research.Core

let private usage () =
    eprintfn "usage: Reproduce --data <mnist folder> [--out <paper folder>] [--quick] [--paper-budget | --binarised-check | --figure3 | --iwae-table | --comparison | --paper-only]"
    eprintfn "  --quick         a small budget for every script (writes runs/quick/paper, never paper/)"
    eprintfn "  --paper-budget  only Figure 2, to the paper's 10^8 training samples per curve (hours; resumable:"
    eprintfn "                  rerun the same command to continue, see runs/fig2-paper/), then paper.md"
    eprintfn "  --binarised-check  AEVB N_z = 3 of the paper-budget run again on images binarised in every minibatch, to"
    eprintfn "                  10^7 samples, for its train-test gap beside the grey-level curve's (about 10 min; resumable), then paper.md"
    eprintfn "  --figure3       only Figure 3 (results and figure; not paper.md), at the budget chosen"
    eprintfn "  --iwae-table    only the IWAE table (Burda et al.'s model as VAE and IWAE k = 5, 50, ours and PyTorch's;"
    eprintfn "                  about 17 min here; resumable, see runs/iwae-table/), then paper.md"
    eprintfn "  --comparison    only the comparison table (PCA, linear AE, deep AE, VAE; the linear VAE against PPCA), then paper.md"
    eprintfn "  --paper-only    only paper.md, from the results and figures already in the paper folder (no training;"
    eprintfn "                  e.g. while a --paper-budget run is stopped part of the way)"
    2

/// What each run trains: the default, the smoke test, or Figure 2 at the paper's budget.
type private Settings =
    { Comparison: Comparison.Budget; Sweep: LatentSweep.Budget; FigureEpochs: int; Fig2: Fig2Bound.Budget
      Fig3Sizes: int64 list; Fig3Budget: int64; Fig3K: int; Iwae: IwaeTable.Budget; TrainRows: int64; Cache: string; Paper: string }

let private settings quick =
    if quick then
        { Comparison = Comparison.quick; Sweep = LatentSweep.quick; FigureEpochs = 1; Fig2 = { Epochs = 1; Latents = [ 3; 20 ]; SearchRows = 1000L }
          Fig3Sizes = [ 1000L; 10000L ]; Fig3Budget = 20000L; Fig3K = 10; Iwae = IwaeTable.quick; TrainRows = 10000L; Cache = Path.Combine("runs", "quick"); Paper = Path.Combine("runs", "quick", "paper") }
    else
        { Comparison = Comparison.full; Sweep = LatentSweep.full; FigureEpochs = 20
          Fig2 = { Epochs = 30; Latents = Fig2Bound.latentSizes; SearchRows = 10000L }
          Fig3Sizes = Fig3Marginal.trainSizes; Fig3Budget = 2_000_000L; Fig3K = 200; Iwae = IwaeTable.full
          TrainRows = 60000L; Cache = "runs"; Paper = "paper" }

/// The options without a value; paper.md names those its run was given.
let private flags = [ "--quick"; "--paper-budget"; "--binarised-check"; "--figure3"; "--iwae-table"; "--comparison"; "--paper-only" ]

[<EntryPoint>]
let main argv =
    let rec parse (m: Map<string, string>) = function
        | flag :: rest when List.contains flag flags -> parse (m.Add(flag, "true")) rest
        | (k: string) :: v :: rest when k.StartsWith "--" -> parse (m.Add(k, v)) rest
        | [] -> Some m
        | _ -> None
    match parse Map.empty (List.ofArray argv) with
    | Some opts when opts.ContainsKey "--data" ->
        let s = settings (opts.ContainsKey "--quick")
        let paper = opts.TryFind "--out" |> Option.defaultValue s.Paper |> Path.GetFullPath
        let results, figures = Path.Combine(paper, "results"), Path.Combine(paper, "figures")
        let clock = Stopwatch.StartNew()
        let all, _ = Mnist.load opts.["--data"] Mnist.Train
        let test, testLabels = Mnist.load opts.["--data"] Mnist.Test
        use train = if s.TrainRows < all.shape.[0] then (use _ = all in all.narrow(0L, 0L, s.TrainRows).clone()) else all
        use test = test
        let mutable fig2Points = []
        let step title run : Steps.Step = { Title = title; Run = run }
        let paperBudget = opts.ContainsKey "--paper-budget"
        let fig2Step =
            step "Figure 2: AEVB against wake-sleep" (fun () ->
                let written, points = Fig2Bound.run s.Cache results figures s.Fig2 train test
                fig2Points <- points
                written)
        let paperStep =
            step "paper.md" (fun () ->
                let command = "dotnet fsi build.fsx reproduce" + (String.Join("", argv |> Array.filter (fun a -> List.contains a flags) |> Array.map ((+) " ")))
                [ Paper.write paper s.Cache command fig2Points s.Fig2 (String.Join(" or ", s.Fig3Sizes)) s.Fig3Budget s.Fig3K train.shape.[0] test.shape.[0] ])
        // The runs that do not train Figure 2 write paper.md's Figure 2 text from the points the default run
        // published; only where there are none (a new --out folder) do they train it.
        let fig2Published =
            step "Figure 2 (default budget): the published points, or trained where there are none" (fun () ->
                match Fig2Bound.published results with
                | Some points ->
                    let csv = Path.Combine(results, "fig2_bound.csv")
                    Log.line $"Figure 2: {points.Length} points from {csv}"
                    fig2Points <- points
                    []
                | None -> fig2Step.Run ())
        let fig3Step =
            step "Figure 3: marginal log-likelihood" (fun () ->
                Fig3Marginal.run s.Cache results figures s.Fig2.SearchRows s.Fig3Sizes s.Fig3Budget s.Fig3K train test |> fst)
        let comparisonStep =
            step "PCA, linear AE, deep AE and VAE at the foundation settings" (fun () ->
                let rows = Comparison.run s.Comparison s.Cache results train test
                let csv, md = Comparison.write results rows
                Log.line ("\n" + File.ReadAllText md)
                [ csv; md; Path.Combine(results, "pca_explained_variance.csv") ])
        if opts.ContainsKey "--figure3" then Steps.run [ fig3Step ]
        elif opts.ContainsKey "--paper-only" then Steps.run [ fig2Published; paperStep ]
        elif opts.ContainsKey "--iwae-table" then
          Steps.run [
            step "The IWAE table: VAE and IWAE k = 5, 50 on dynamically binarised MNIST, ours and PyTorch's" (fun () ->
                IwaeTable.run s.Iwae s.Cache results opts.["--data"] train test)
            fig2Published
            paperStep ]
        elif opts.ContainsKey "--binarised-check" then
          Steps.run [
            step "Figure 2's train-test gap: AEVB N_z = 3 on binarised images (resumable)" (fun () ->
                Fig2Binarised.run s.Cache results s.Fig2.SearchRows train test)
            fig2Published
            paperStep ]
        elif paperBudget then
          Steps.run [
            step "Figure 2 at the paper's budget: 10^8 samples per curve (resumable)" (fun () ->
                Fig2PaperBudget.run s.Cache results figures s.Fig2.SearchRows train test |> fst)
            fig2Published
            paperStep ]
        elif opts.ContainsKey "--comparison" then Steps.run [ comparisonStep; fig2Published; paperStep ]
        else
          Steps.run [
            comparisonStep
            step "Latent sizes: PCA, linear AE, deep AE, VAE" (fun () ->
                LatentSweep.run s.Sweep s.Cache train test |> LatentSweep.write s.Sweep test.shape.[0] results figures)
            step "Reconstructions, 2-D codes and latent perturbations" (fun () ->
                [ Reconstructions.run s.Sweep s.Cache figures train test testLabels 20
                  Codes2d.run s.Sweep s.Cache figures train test testLabels 5000L
                  yield! Perturbation.run s.Sweep s.Cache figures train test 20 5 ])
            step "Figures 4 and 5, interpolation" (fun () ->
                Fig4Manifold.run s.Cache figures train test testLabels s.FigureEpochs
                @ [ Fig5Samples.run s.Cache figures train s.FigureEpochs
                    Interpolation.run s.Cache figures train test testLabels s.FigureEpochs ])
            fig2Step
            fig3Step
            paperStep ]
        printfn "\nDone in %.0f s. Figures: %s; tables: %s; paper: %s" clock.Elapsed.TotalSeconds figures results (Path.Combine(paper, "paper.md"))
        0
    | _ -> usage ()

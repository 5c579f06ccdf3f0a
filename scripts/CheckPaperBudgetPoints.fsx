// Re-trains a stretch of one paper-budget curve from a run checkpoint that a commit holds, with the code as
// built now, and compares the bounds it measures with those paper/results/fig2_bound_paper_budget.csv
// published, bit for bit: a check that a change of the code (or of the host) left the published points as
// they were. From the repository root, after `dotnet fsi build.fsx build` and `dotnet fsi build.fsx data`:
//
//   dotnet fsi scripts/CheckPaperBudgetPoints.fsx <commit> <AEVB|Wake-sleep> <N_z> <last epoch>
//
// e.g. `62fd93f AEVB 10 950`. The exit code is the number of points that differ.
#r "Reproduce/bin/Release/net10.0/TorchSharp.dll"
#r "Reproduce/bin/Release/net10.0/Research.Core.dll"
#r "Reproduce/bin/Release/net10.0/Reproduce.dll"

open System
open System.Diagnostics
open System.IO
open TorchSharp
open Research.Core
open Reproduce

Native.ensureLoaded () // before any other use of TorchSharp, as docs/troubleshooting.md says

let commit, algorithm, latent, lastEpoch =
    match fsi.CommandLineArgs |> Array.skip 1 with
    | [| c; a; z; e |] ->
        let algorithm =
            match a with
            | "AEVB" -> PaperModels.Aevb
            | "Wake-sleep" -> PaperModels.WakeSleep
            | _ -> failwithf "the algorithm is AEVB or Wake-sleep, not %s" a
        c, algorithm, int z, int e
    | _ -> failwith "usage: dotnet fsi scripts/CheckPaperBudgetPoints.fsx <commit> <AEVB|Wake-sleep> <N_z> <last epoch>"

// The curve's folder as the commit holds it, in a scratch run cache.
let cache = Path.Combine(Path.GetTempPath(), $"check-paper-budget-{Guid.NewGuid():N}")
let dir = Fig2PaperBudget.folder cache algorithm latent
Directory.CreateDirectory dir |> ignore
let relative = Path.GetRelativePath(cache, dir).Replace('\\', '/')
for file in [ "run.checkpoint"; "points.csv"; "step-size.txt"; "sessions.csv" ] do
    let git = ProcessStartInfo("git", $"show {commit}:runs/{relative}/{file}", RedirectStandardOutput = true, UseShellExecute = false)
    use p = Process.Start git
    use target = File.Create(Path.Combine(dir, file))
    p.StandardOutput.BaseStream.CopyTo target
    p.WaitForExit()
    if p.ExitCode <> 0 then failwithf "%s: runs/%s/%s is not in commit %s" (Path.GetFileName __SOURCE_FILE__) relative file commit

torch.set_num_threads 1 // as the run trains each curve
let train, _ = Mnist.load "data/mnist" Mnist.Train
let test, _ = Mnist.load "data/mnist" Mnist.Test
let published =
    Fig2PaperBudget.read "paper/results/fig2_bound_paper_budget.csv"
    |> List.filter (fun p -> p.Latent = latent && p.Algorithm = PaperModels.name algorithm)
let before = Fig2PaperBudget.read (Path.Combine(dir, "points.csv")) |> List.map (fun p -> p.Epoch) |> List.fold max 0
let points = Fig2PaperBudget.curve Fig2PaperBudget.Grey cache 0L lastEpoch algorithm latent published ignore train test
let mutable differ = 0
for p in points |> List.filter (fun p -> p.Epoch > before) do
    match published |> List.tryFind (fun e -> e.Epoch = p.Epoch) with
    | Some e ->
        let same = p.Train = e.Train && p.Test = e.Test
        if not same then differ <- differ + 1
        printfn "epoch %d: train %.17g, test %.17g; published %.17g, %.17g: %s" p.Epoch p.Train p.Test e.Train e.Test (if same then "identical" else "DIFFERENT")
    | None -> printfn "epoch %d: not published" p.Epoch
Directory.Delete(cache, true)
exit differ

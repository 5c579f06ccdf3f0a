/// What Figures 2 and 3 share: training curves of AEVB against wake-sleep, cached as CSV in the run cache,
/// and panels of four lines (each algorithm on training and on test data) against samples on a log axis.
module Reproduce.Curves

open System
open System.IO

/// The curve stored in `file` (a CSV with `header`) when an earlier run computed it; otherwise `compute ()`,
/// written there for the next run.
let cached (file: string) (header: string) (toLine: 'p -> string) (ofLine: string -> 'p) (compute: unit -> 'p list) =
    if File.Exists file then File.ReadAllLines file |> Array.skip 1 |> Array.map ofLine |> List.ofArray
    else
        let points = compute ()
        Directory.CreateDirectory(Path.GetDirectoryName file) |> ignore
        File.WriteAllLines(file, header :: List.map toLine points)
        points

/// The points of every curve in `runs`, in order, advancing the current step's progress between curves.
let all (runs: 'r list) (curve: 'r -> 'p list) : 'p list =
    [ for i, r in List.indexed runs do
        Log.fraction i runs.Length
        yield! curve r ]

/// Draws each algorithm of `points` (in their order: AEVB, wake-sleep, and MCEM in Figure 3), on training and
/// on test data, against training samples (log axis). `points` are the panel's; `read` gives a point's
/// algorithm, samples, train value and test value; non-finite values (not measured there) are left out.
let drawPanel (plot: ScottPlot.Plot) (title: string) (yLabel: string) (points: 'p list)
              (read: 'p -> string * int64 * float * float) =
    let rows = List.map read points
    let algorithms = rows |> List.map (fun (a, _, _, _) -> a) |> List.distinct
    let series algorithm (value: float * float -> float) =
        let mine = rows |> List.filter (fun (a, _, _, _) -> a = algorithm)
        let measured = mine |> List.filter (fun (_, _, train, test) -> Double.IsFinite(value (train, test)))
        measured |> List.map (fun (_, s, _, _) -> float s) |> Array.ofList,
        measured |> List.map (fun (_, _, train, test) -> value (train, test)) |> Array.ofList
    Plots.drawLinesLogX plot title "training samples evaluated" yLabel
        [ for algorithm in algorithms do
            for part, value in [ "train", fst; "test", snd ] ->
                let xs, ys = series algorithm value
                $"{algorithm} ({part})", xs, ys ]

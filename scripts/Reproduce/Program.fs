/// `dotnet fsi build.fsx reproduce` runs this: trains the models and writes paper/results/.
module Reproduce.Program

open System
open System.IO
open Research.Core

let private usage () =
    eprintfn "usage: Reproduce --data <mnist folder> [--out <results folder>] [--figures true|false] [--quick]"
    2

[<EntryPoint>]
let main argv =
    let rec parse (m: Map<string, string>) = function
        | "--quick" :: rest -> parse (m.Add("--quick", "true")) rest
        | (k: string) :: v :: rest when k.StartsWith "--" -> parse (m.Add(k, v)) rest
        | [] -> Some m
        | _ -> None
    match parse Map.empty (List.ofArray argv) with
    | Some opts when opts.ContainsKey "--data" ->
        let quick = opts.ContainsKey "--quick"
        // A quick run checks the pipeline; it never overwrites the committed results.
        let defaultOut = if quick then Path.Combine("runs", "quick", "paper", "results") else Path.Combine("paper", "results")
        let out = opts.TryFind "--out" |> Option.defaultValue defaultOut |> Path.GetFullPath
        let all, _ = Mnist.load opts.["--data"] Mnist.Train
        let test, testLabels = Mnist.load opts.["--data"] Mnist.Test
        use train = if quick then (use _ = all in all.narrow(0L, 0L, 10000L).clone()) else all
        use test = test
        let rows = Comparison.run (if quick then Comparison.quick else Comparison.full) out train test
        let csv, md = Comparison.write out rows
        printfn "\n%s\n" (File.ReadAllText md)
        printfn "Wrote %s and %s" csv md
        if opts.TryFind "--figures" <> Some "false" then
            let figures = Path.GetFullPath(Path.Combine(out, "..", "figures"))
            let cache, epochs = if quick then Path.Combine("runs", "quick"), 1 else "runs", 50
            let written =
                Fig4Manifold.run cache figures train test testLabels epochs
                @ [ Fig5Samples.run cache figures train epochs
                    Interpolation.run cache figures train test testLabels epochs ]
            written |> List.iter (printfn "Wrote %s")
        0
    | _ -> usage ()

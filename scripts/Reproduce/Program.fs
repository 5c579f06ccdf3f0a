/// `dotnet fsi build.fsx reproduce` runs this: trains the models and writes paper/results/.
module Reproduce.Program

open System
open System.IO
open Research.Core

let private usage () =
    eprintfn "usage: Reproduce --data <mnist folder> [--out <results folder>]"
    2

[<EntryPoint>]
let main argv =
    let rec parse (m: Map<string, string>) = function
        | (k: string) :: v :: rest when k.StartsWith "--" -> parse (m.Add(k, v)) rest
        | [] -> Some m
        | _ -> None
    match parse Map.empty (List.ofArray argv) with
    | Some opts when opts.ContainsKey "--data" ->
        let out = opts.TryFind "--out" |> Option.defaultValue (Path.GetFullPath(Path.Combine("paper", "results")))
        let train, _ = Mnist.load opts.["--data"] Mnist.Train
        let test, _ = Mnist.load opts.["--data"] Mnist.Test
        use train = train
        use test = test
        let rows = Comparison.run out train test
        let csv, md = Comparison.write out rows
        printfn "\n%s\n" (File.ReadAllText md)
        printfn "Wrote %s and %s" csv md
        0
    | _ -> usage ()

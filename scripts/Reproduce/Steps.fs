/// Runs the named steps of a reproduction in order and shows how far it is: Spectre.Console progress bars
/// (one per step, with elapsed time) when the output is an interactive terminal, plain "=== step ==="
/// headers and lines otherwise (CI logs, pipes, files).
module Reproduce.Steps

open System
open System.Diagnostics
open Spectre.Console

/// One step: a title and the work, which returns the files it wrote.
type Step = { Title: string; Run: unit -> string list }

let private interactive () =
    not Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive

let private plain (steps: Step list) =
    let clock = Stopwatch.StartNew()
    for s in steps do
        printfn "\n=== %s (%.0f s so far) ===" s.Title clock.Elapsed.TotalSeconds
        for file in s.Run () do printfn "Wrote %s" file

let private bars (steps: Step list) =
    AnsiConsole
        .Progress()
        .AutoClear(false)
        .HideCompleted(false)
        .Columns([| TaskDescriptionColumn() :> ProgressColumn; ProgressBarColumn(); PercentageColumn()
                    ElapsedTimeColumn(); SpinnerColumn() |])
        .Start(fun ctx ->
            let tasks = [ for s in steps -> ctx.AddTask(Markup.Escape s.Title, autoStart = false, maxValue = 1.0) ]
            let say (text: string) = AnsiConsole.MarkupLine(Markup.Escape text)
            for s, task in List.zip steps tasks do
                task.StartTask()
                Log.redirect say (fun f -> task.Value <- max task.Value (min 1.0 f))
                say $"=== {s.Title} ==="
                try
                    for file in s.Run () do say $"Wrote {file}"
                finally
                    Log.redirect (fun text -> Console.WriteLine text) ignore
                task.Value <- 1.0
                task.StopTask())

/// Runs `steps` in order with the progress display that suits the output.
let run (steps: Step list) = if interactive () then bars steps else plain steps

/// Progress of a reproduction run: timestamped lines, one format for every script, and the fraction of
/// the current step done. On a terminal the lines scroll above Spectre.Console progress bars (see
/// Steps); when the output is redirected they are plain lines and fractions are not shown.
module Reproduce.Log

open System

let mutable private write: string -> unit = fun s -> Console.WriteLine s
let mutable private advance: float -> unit = ignore

let private sync = obj ()

/// Prints "[HH:mm:ss] message"; safe from several threads (the paper-budget run trains curves on two).
let line (message: string) = lock sync (fun () -> write (sprintf "[%s] %s" (DateTime.Now.ToString "HH:mm:ss") message))

/// Reports that `doneSoFar` of `total` parts of the current step are finished.
let fraction (doneSoFar: int) (total: int) = if total > 0 then advance (float doneSoFar / float total)

/// Sends lines and fractions to `writer` and `progress` (used by Steps while bars are shown).
let redirect (writer: string -> unit) (progress: float -> unit) =
    write <- writer
    advance <- progress

/// Timestamped progress lines, one format for every script.
module Reproduce.Log

/// Prints "[HH:mm:ss] message".
let line (message: string) = printfn "[%s] %s" (System.DateTime.Now.ToString "HH:mm:ss") message

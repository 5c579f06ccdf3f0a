/// The commit the reproduction runs from, for paper.md's header and the paper-budget run's record of which
/// code trained which epochs.
module Reproduce.Commit

open System.Diagnostics

/// The short hash of HEAD (with "+changes" when tracked files other than the run's own outputs, paper/ and
/// runs/, differ from it), or "unknown" where git cannot say.
let current () =
    try
        let git args =
            let psi = ProcessStartInfo("git", (args: string), RedirectStandardOutput = true, UseShellExecute = false)
            use p = Process.Start psi
            let out = p.StandardOutput.ReadToEnd().Trim()
            p.WaitForExit()
            if p.ExitCode = 0 then Some out else None
        match git "rev-parse --short HEAD", git "status --porcelain --untracked-files=no -- . :(exclude)paper :(exclude)runs" with
        | Some sha, Some "" -> sha
        | Some sha, Some _ -> sha + "+changes"
        | _ -> "unknown"
    with _ -> "unknown"

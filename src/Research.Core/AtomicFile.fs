/// Files replaced atomically: written to a temporary file in the same folder, flushed to disk, then
/// renamed over the target, so a reader sees the old file or the whole new one, never a part.
module Research.Core.AtomicFile

open System
open System.IO

/// Writes `path` with `write`, opening the temporary file through openTemp (given its path), which lets
/// callers and tests wrap the stream, for example to inject a fault. A FileStream is flushed to disk before
/// the rename. On any failure a previous file at path is left untouched and the temporary file is removed.
let writeWith (openTemp: string -> Stream) (path: string) (write: Stream -> unit) : unit =
    if isNull path then nullArg "path"
    let full = Path.GetFullPath path
    let temp = Path.Combine(Path.GetDirectoryName full, $".{Path.GetFileName full}.{Guid.NewGuid():N}.tmp")
    try
        do
            use s = openTemp temp
            write s
            match s with
            | :? FileStream as f -> f.Flush true
            | _ -> s.Flush()
        File.Move(temp, full, true)
    with _ ->
        // Best effort: the original error matters more than a failure to clean up.
        (try File.Delete temp with _ -> ())
        reraise ()

/// Writes `path` atomically with `write` (see writeWith), through a new FileStream.
let write (path: string) (write: Stream -> unit) : unit =
    writeWith (fun p -> new FileStream(p, FileMode.CreateNew, FileAccess.Write, FileShare.None, 65536) :> Stream) path write

/// Writing a file atomically: readers of the path see either the old file or the whole new one, never
/// a half-written one, whatever fails in between (checkpoints, model files, .npy files).
module Research.Core.AtomicFile

open System
open System.IO

/// Opens a new temporary file for writing: fails if it exists, shares it with no one.
let openTemp (path: string) : Stream =
    new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 65536) :> Stream

/// Like write, but opens the temporary file through openTemp (given its path); lets callers and tests
/// wrap the stream, for example to inject a fault. A FileStream is flushed to disk before the rename.
let writeWith (openTemp: string -> Stream) (path: string) (content: Stream -> unit) : unit =
    if isNull path then nullArg "path"
    if String.IsNullOrWhiteSpace path then raise (ArgumentException("The path is empty.", "path"))
    let full = Path.GetFullPath path
    let temp = Path.Combine(Path.GetDirectoryName full, $".{Path.GetFileName full}.{Guid.NewGuid():N}.tmp")
    try
        do
            use s = openTemp temp
            content s
            match s with
            | :? FileStream as f -> f.Flush true
            | _ -> s.Flush()
        File.Move(temp, full, true)
    with _ ->
        // Best effort: the original error matters more than a failure to clean up.
        (try File.Delete temp with _ -> ())
        reraise ()

/// Writes path atomically: content writes to a temporary file in the same folder (so the rename cannot
/// cross file systems), which is flushed to disk and then renamed over path. On any failure a previous
/// file at path is left untouched and the temporary file is removed. content must not close the stream.
let write (path: string) (content: Stream -> unit) : unit = writeWith openTemp path content

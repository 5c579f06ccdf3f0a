/// How much memory a process holds, as the system and as glibc's malloc see it: what long runs record
/// to show that their memory stays flat (the paper-budget run, the bench, the soak tests).
module Research.Core.ProcessMemory

open System
open System.IO
open System.Runtime.InteropServices

/// glibc's mallinfo2 (≥ 2.33): summed over every arena, plus the chunks it served with mmap.
[<Struct; StructLayout(LayoutKind.Sequential)>]
type private MallInfo2 =
    val Arena: unativeint
    val OrdBlks: unativeint
    val SmBlks: unativeint
    val HBlks: unativeint
    val HBlkHd: unativeint
    val UsmBlks: unativeint
    val FsmBlks: unativeint
    val UordBlks: unativeint
    val FordBlks: unativeint
    val KeepCost: unativeint

[<DllImport("libc", EntryPoint = "mallinfo2")>]
extern MallInfo2 private mallinfo2()

let private MiB = 1048576.0

/// A field of /proc/<pid>/status given in kB ("VmRSS", "VmHWM", …), in MiB; NaN where there is no such
/// file or field (not Linux, or the process has ended). `pid` is a process id or "self".
let statusMiB (pid: string) (field: string) =
    let path = $"/proc/{pid}/status"
    try
        File.ReadAllLines path
        |> Array.tryFind (fun l -> l.StartsWith(field + ":"))
        |> Option.map (fun l -> float (l.Substring(field.Length + 1).Trim().Split(' ').[0]) / 1024.0)
        |> Option.defaultValue nan
    with :? IOException | :? UnauthorizedAccessException -> nan

/// This process's resident set size in MiB (NaN off Linux). It counts what malloc keeps free for reuse,
/// so it moves with malloc's settings (Native.mallocTuning) and with what ran before, not only with use.
let residentMiB () = statusMiB "self" "VmRSS"

/// True where the C heap can be measured (Linux with glibc ≥ 2.33).
let canMeasureHeap =
    lazy
        (OperatingSystem.IsLinux()
         && (try mallinfo2 () |> ignore; true with :? EntryPointNotFoundException | :? DllNotFoundException -> false))

/// Bytes the C heap has handed out and not had back, over every arena (libtorch's CPU allocator is
/// malloc, so every tensor's storage is here); None where it cannot be measured. Unlike the RSS it does
/// not count memory malloc keeps free: a leak shows here as growth.
let heapInUseBytes () =
    if canMeasureHeap.Value then
        let m = mallinfo2 ()
        Some(int64 m.UordBlks + int64 m.HBlkHd)
    else None

/// heapInUseBytes in MiB, NaN where it cannot be measured.
let heapInUseMiB () =
    match heapInUseBytes () with
    | Some b -> float b / MiB
    | None -> nan

/// Measurements the reliability tests make of the process: live tensors, native heap, resident memory,
/// and bit patterns for exact comparisons.
module Research.Core.Tests.Probes

open System
open System.IO
open Expecto
open TorchSharp
open Research.Core

/// Prints a measured figure when RESEARCH_TEST_FIGURES=1 (the numbers quoted in docs/reliability.md).
let figure fmt =
    Printf.kprintf (fun s -> if Environment.GetEnvironmentVariable "RESEARCH_TEST_FIGURES" = "1" then eprintfn "  [figure] %s" s) fmt

/// Tensors created on the calling thread and not yet disposed on it (TorchSharp 0.107's per-thread
/// DisposeScopeManager statistics). A tensor left to the garbage collector is finalised on the
/// finalizer thread and so stays counted here: this count sees leaks exactly, whenever the GC runs.
let liveTensors () = DisposeScopeManager.Statistics.ThreadTotalLiveCount

/// True where the native heap can be measured (Linux with glibc ≥ 2.33).
let canMeasureHeap = ProcessMemory.canMeasureHeap

/// Bytes the C heap has handed out and not had back (libtorch's CPU allocator is malloc).
let nativeHeapBytes () =
    match ProcessMemory.heapInUseBytes () with
    | Some b -> b
    | None -> failwith "the native heap cannot be measured here (needs glibc's mallinfo2)"

/// The resident set size of this process in bytes, after giving freed heap pages back to the system.
let residentBytes () =
    Native.releaseFreedMemory ()
    int64 (ProcessMemory.residentMiB () * 1048576.0)

/// Collects managed garbage and runs finalizers (so that earlier tests' leftovers are not counted).
let settle () =
    GC.Collect()
    GC.WaitForPendingFinalizers()
    GC.Collect()

let MiB = 1048576.0

/// The bit patterns of float32 values, so that equality means identical bits (−0 ≠ 0, NaN = NaN).
let bits32 (a: float32[]) = a |> Array.map BitConverter.SingleToInt32Bits
let bits64 (a: float[]) = a |> Array.map BitConverter.DoubleToInt64Bits
let bits2D (a: float32[,]) = a |> Seq.cast<float32> |> Array.ofSeq |> bits32

/// Every parameter of a model as (name, bit patterns), without leaving tensors behind.
let weightBits (net: Networks.EncoderDecoder) =
    net.NamedParameters
    |> List.map (fun (n, p) -> n, bits32 (Interop.toArray p))

/// True when every parameter is finite.
let allFinite (net: Networks.EncoderDecoder) =
    use _ = torch.NewDisposeScope()
    net.NamedParameters |> List.forall (fun (_, p) -> torch.isfinite(p).all().item<bool> ())

/// The bit patterns of a training history's losses.
let historyBits (h: Training.EpochReport list) =
    h |> List.map (fun r -> r.Epoch, BitConverter.DoubleToInt64Bits r.TrainLoss, r.ValidationLoss |> Option.map BitConverter.DoubleToInt64Bits, r.ExamplesSeen)

/// n × p values in {0, 1} from a seed.
let binaryData seed n p =
    use g = new torch.Generator(uint64 seed)
    use u = torch.rand([| int64 n; int64 p |], generator = g)
    use b = u.gt((0.5f).ToScalar())
    b.to_type(torch.ScalarType.Float32)

/// Runs f, expecting an exception of type 'E, and returns it.
let catch<'E when 'E :> exn> (f: unit -> unit) : 'E =
    try
        f ()
        failtestf "expected %s, but nothing was thrown" typeof<'E>.Name
    with :? 'E as e -> e

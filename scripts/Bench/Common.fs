/// What the orchestrator and its child processes share: the result protocol, statistics, /proc readings.
module Bench.Common

open System
open System.Diagnostics
open System.Globalization
open System.IO
open System.Text.Json.Nodes

let inv = CultureInfo.InvariantCulture

/// Timestamped progress on stderr (stdout carries the results).
let log (s: string) = eprintfn "[%s] %s" (DateTime.Now.ToString("HH:mm:ss", inv)) s

/// A child's result line: `@result {json}`; the Python scripts print the same.
let ResultPrefix = Scripts.Peers.ResultPrefix

let emit (o: JsonObject) = printfn "%s%s" ResultPrefix (o.ToJsonString())

/// VmRSS and VmHWM of a process in MiB (Linux; NaN elsewhere).
let procStatus (pid: string) = Research.Core.ProcessMemory.statusMiB pid "VmRSS", Research.Core.ProcessMemory.statusMiB pid "VmHWM"

/// Median of a non-empty sample (mean of the middle two for an even count).
let median (xs: float list) =
    let s = List.sort xs |> List.toArray
    let n = s.Length
    if n = 0 then nan elif n % 2 = 1 then s.[n / 2] else (s.[n / 2 - 1] + s.[n / 2]) / 2.0

/// Seconds of `f ()`.
let time (f: unit -> 'a) =
    let sw = Stopwatch.StartNew()
    let r = f ()
    r, sw.Elapsed.TotalSeconds

/// Useful floating-point operations of one training step of an MLP on a batch of `batch` rows:
/// forward 2·B·in·out per layer, backward 2·B·in·out for the weight gradient and again for the input
/// gradient except at the first layer (the data need no gradient). Elementwise work is not counted.
let mlpTrainFlops (layers: (int * int) list) (batch: float) =
    let macs = layers |> List.sumBy (fun (i, o) -> float i * float o)
    let first = let i, o = List.head layers in float i * float o
    2.0 * batch * (3.0 * macs - first)

/// The layers of the library's VAE at its defaults (784-400-20) and of the deep AE (784-256-64-20).
let vaeLayers = [ 784, 400; 400, 40; 20, 400; 400, 784 ]
let aeLayers = [ 784, 256; 256, 64; 64, 20; 20, 64; 64, 256; 256, 784 ]

/// Useful floating-point operations of one training step from the multiply-adds of each layer's forward pass
/// on one example, input side first: forward, weight gradient and input gradient (2 FLOP a multiply-add
/// each), without the first layer's input gradient.
let trainFlops (macs: float list) (batch: float) = 2.0 * batch * (3.0 * List.sum macs - List.head macs)

/// The multiply-adds per image of the convolutional VAE of benchmarks/conv_vae.py: a k×k convolution from
/// `a` to `b` channels costs a·b·k² per output position, a transposed one the same per input position.
let convVaeMacs =
    let conv a b positions = float a * float b * 16.0 * float positions
    [ conv 1 32 (14 * 14); conv 32 64 (7 * 7); 3136.0 * 40.0 // encoder
      20.0 * 3136.0; conv 64 32 (7 * 7); conv 32 1 (14 * 14) ] // decoder

/// The multiply-adds per image of the IWAE 784-200-200-50 with K samples: the decoder runs on K·B rows.
let iwaeMacs (samples: int) =
    let k = float samples
    [ 784.0 * 200.0; 200.0 * 200.0; 200.0 * 100.0; k * 50.0 * 200.0; k * 200.0 * 200.0; k * 200.0 * 784.0 ]

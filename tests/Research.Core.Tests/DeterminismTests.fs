/// Bit-for-bit determinism across processes: the test runner starts itself twice in a child mode
/// (`--determinism-child <out-file> [--threads N]`), each child trains the same seeded VAE and writes
/// its weights, history and scores, and the files must be identical to each other and to this process.
module Research.Core.Tests.DeterminismTests

open System
open System.Diagnostics
open System.IO
open System.Text
open Expecto
open TorchSharp
open Research.Core
open Research.Core.Tests.Probes

/// Trains the fixed problem and returns its result as bytes: every parameter's float32 bits, then the
/// history's bits, then an ELBO and a sample with fixed seeds. MNIST-sized (784-256-16, minibatches of
/// 128), so that the matrix products are MKL's multithreaded ones.
let result () : byte[] =
    Native.ensureLoaded ()
    use x = binaryData 51 256 784
    use valid = binaryData 52 128 784
    use vae = new Vae.VariationalAutoencoder({ Vae.defaults 784 16 with HiddenSizes = [ 256 ]; Seed = 7; Device = "cpu" })
    let h = vae.Fit(x, { Training.defaults with Epochs = 2; BatchSize = 128; Seed = 8; Validation = Some valid })
    use out = new MemoryStream()
    use w = new BinaryWriter(out)
    for name, b in weightBits vae.Networks do
        w.Write name
        for v in b do w.Write v
    for epoch, loss, validation, seen in historyBits h do
        w.Write epoch
        w.Write loss
        w.Write(defaultArg validation 0L)
        w.Write seen
    w.Write(BitConverter.DoubleToInt64Bits(vae.Elbo(valid, 3, 1)))
    use s = vae.Sample(4, 2)
    for v in bits2D (Interop.toArray2D s) do w.Write v
    w.Flush()
    out.ToArray()

/// What the process computes with: the settings that decide the bits.
let environment () =
    let cbwr = Environment.GetEnvironmentVariable "MKL_CBWR"
    $"threads {torch.get_num_threads ()}, MKL_CBWR={cbwr}, MKL code path {Native.mklCodePath ()}, malloc {Native.mallocTuning ()}, libtorch {torch.__version__}, {Runtime.InteropServices.RuntimeInformation.ProcessArchitecture}"

/// The child mode: writes result () to `path` and the environment to stdout; exit code 0.
let child (path: string) (threads: int option) =
    Native.ensureLoaded ()
    threads |> Option.iter torch.set_num_threads
    let bytes = result ()
    File.WriteAllBytes(path, bytes)
    printfn "%s" (environment ())
    0

/// Starts this test program in child mode; returns (exit code, output, file bytes).
let private startChild (dir: string) (name: string) (extra: string list) (environment: (string * string option) list) =
    let out = Path.Combine(dir, name)
    let host = Environment.ProcessPath
    let entry = Reflection.Assembly.GetEntryAssembly().Location
    let psi = ProcessStartInfo(host, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    // Run through `dotnet <dll>` when this process is the dotnet host, else through the app host itself.
    if Path.GetFileNameWithoutExtension host = "dotnet" then psi.ArgumentList.Add entry
    for a in [ "--determinism-child"; out ] @ extra do psi.ArgumentList.Add a
    for key, value in environment do
        match value with
        | Some v -> psi.Environment.[key] <- v
        | None -> psi.Environment.Remove key |> ignore
    let p = Process.Start psi
    let stdout = p.StandardOutput.ReadToEndAsync()
    let stderr = p.StandardError.ReadToEndAsync()
    fun () ->
        if not (p.WaitForExit 120000) then
            p.Kill true
            failtest "a determinism child ran over 2 minutes"
        let text = stdout.Result.Trim() + stderr.Result.Trim()
        let bytes = if File.Exists out then File.ReadAllBytes out else [||]
        p.ExitCode, text, bytes

/// This process's result and that of a child started with `variable`=keep, after checking that the child
/// exited cleanly: (this process's bytes, the child's environment line, the child's bytes).
let private againstChildKeeping (variable: string) =
    let dir = Directory.CreateTempSubdirectory("research-keep-")
    try
        let mine = result ()
        let code, text, kept = startChild dir.FullName "kept.bin" [] [ variable, Some "keep" ] ()
        figure "child with %s=keep: [%s]" variable text
        Expect.equal code 0 $"the child exits cleanly: {text}"
        mine, text, kept
    finally
        dir.Delete true

/// The first differing byte offset, for messages.
let private firstDifference (a: byte[]) (b: byte[]) =
    Seq.zip a b |> Seq.tryFindIndex (fun (x, y) -> x <> y) |> Option.defaultValue (min a.Length b.Length)

let tests =
    testList "Determinism" [
        test "two child processes and this one train to bit-identical weights, history and scores" {
            let dir = Directory.CreateTempSubdirectory("research-determinism-")
            try
                let clock = Stopwatch.StartNew()
                let mine = result ()
                let inProcess = clock.Elapsed.TotalSeconds
                // One process at a time: OpenMP threads of several processes on few cores spin against each other.
                // The children get no MKL_CBWR from us: the library must set it itself, as for any user.
                let clean = [ "MKL_CBWR", None ]
                let codeA, textA, a = startChild dir.FullName "a.bin" [] clean ()
                let codeB, textB, b = startChild dir.FullName "b.bin" [] clean ()
                // A control that must differ, so that the comparison is known to see a change of the last bit:
                // MKL's SSE2-only code path (MKL_CBWR=COMPATIBLE) rounds differently from its AVX2 kernels.
                let codeC, textC, c = startChild dir.FullName "c.bin" [] [ "MKL_CBWR", Some "COMPATIBLE" ] ()
                figure "children: [%s] [%s] [%s]; this process: %s (%.1f s); %d bytes each; %.1f s in all"
                    textA textB textC (environment ()) inProcess a.Length clock.Elapsed.TotalSeconds
                for code, text in [ codeA, textA; codeB, textB; codeC, textC ] do
                    Expect.equal code 0 $"a child exits cleanly: {text}"
                Expect.isGreaterThan a.Length 800000 "the result holds the weights"
                Expect.isTrue (a = b) $"the two children agree bit for bit (first difference at byte {firstDifference a b})"
                Expect.isTrue (a = mine) $"and agree with this process (first difference at byte {firstDifference a mine}; {textA} vs {environment ()})"
                if Runtime.Intrinsics.X86.Avx2.IsSupported then
                    Expect.isFalse (a = c) "the control with MKL_CBWR=COMPATIBLE differs (the comparison sees last-bit changes)"
            finally
                dir.Delete true
        }
        test "on AMD, MKL runs its feature-dispatched kernels, and RESEARCH_MKL_VENDOR_CHECK=keep restores its own choice" {
            match Native.mklCodePath () with
            | Native.AsShipped reason -> Expect.stringContains (environment ()) "AsShipped" $"not applicable here: {reason}"
            | path ->
                Expect.equal path Native.FeatureDispatch "this process uses MKL's kernels for the CPU's features"
                let mine, text, kept = againstChildKeeping Native.VendorCheckVariable
                Expect.stringContains text "KeptByUser" "the child left MKL's vendor check alone"
                // Different kernels round differently: seeing a difference proves the switch changed MKL's path.
                Expect.isFalse (kept = mine) "MKL's own choice on AMD computes different last bits"
        }
        test "on Linux, glibc malloc is set to reuse a step's large buffers; RESEARCH_MALLOC=keep leaves it alone, and the bits are the same" {
            match Native.mallocTuning () with
            | Native.NotApplicable reason -> Expect.isFalse (OperatingSystem.IsLinux()) $"every glibc Linux is tuned, but here: {reason}"
            | Native.LeftToUser ->
                let set =
                    [ "MALLOC_TOP_PAD_"; "MALLOC_MMAP_THRESHOLD_"; "MALLOC_TRIM_THRESHOLD_"; "MALLOC_MMAP_MAX_"; "GLIBC_TUNABLES"; Native.MallocVariable ]
                    |> List.filter (fun v -> not (isNull (Environment.GetEnvironmentVariable v)))
                Expect.isNonEmpty set "malloc is left alone only when the process was started with settings of its own"
            | Native.Tuned(threshold, pad) ->
                Expect.equal (threshold, pad) (Native.MmapThresholdBytes, Native.TopPadBytes) "the documented settings"
                let mine, text, kept = againstChildKeeping Native.MallocVariable
                Expect.stringContains text "LeftToUser" "the child left malloc as it is"
                // Where buffers live changes their alignment; MKL_CBWR=AUTO,STRICT makes the results independent of it.
                Expect.isTrue (kept = mine) $"malloc's settings do not change the bits (first difference at byte {firstDifference kept mine})"
        }
    ]

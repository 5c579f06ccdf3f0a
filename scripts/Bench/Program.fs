/// `dotnet fsi build.fsx bench [--quick]`: measures Research against PyTorch (Debian's python3-torch on
/// OpenBLAS) and scikit-learn in one run, each measurement a fresh child process, ours and theirs
/// alternating; prints a Markdown table and writes it to paper/results/bench.md (raw results: bench.json).
module Bench.Program

open System
open System.Diagnostics
open System.IO
open System.Text
open System.Text.Json.Nodes
open Bench.Common
open Bench.Report
open Scripts

type Settings =
    { Quick: bool
      /// Alternating repetitions of each timed pair (median and spread over them).
      Reps: int
      /// Training rows of the epoch timings and PCA.
      Rows: int
      RunEpochs: int
      IwSamples: int
      IwRows: int
      /// Minibatches of the untimed pass before each timed epoch, on both sides (long enough for .NET's
      /// tiered JIT to finish compiling the training step; 20 leave it compiling during the timed epoch).
      WarmupSteps: int
      /// Alternating repetitions of the timed rows of issue 11 (conv VAE, own modules, IWAE); fewer than Reps,
      /// since they are slower.
      NewReps: int
      /// Training rows of the conv VAE's and the IWAE's timed (partial) epochs, extrapolated to 60000.
      ConvRows: int
      IwaeRows: int
      /// Untimed warm-up minibatches before those two (conv: of 128; IWAE: of 20).
      ConvWarmupSteps: int
      IwaeWarmupSteps: int
      /// Only the rows of issue 11 (and the VAE epoch pair they are compared with): `--only new`.
      NewOnly: bool
      SgemmN: int
      ProfileSteps: int
      ProfileReps: int
      MemorySteps: int
      /// OMP_WAIT_POLICY for every child (None: inherited).
      WaitPolicy: string option
      Threads: int
      Data: string
      Out: string
      BlasFolder: string
      Root: string }

let private usage () =
    eprintfn "usage: Bench [--quick] [--only new] [--reps N] [--new-reps N] [--threads N] [--omp-wait-policy PASSIVE|ACTIVE] [--data <mnist folder>] [--out <results folder>]"
    eprintfn "       Bench worker <sgemm|vae-epoch|ae-epoch|own-vae-epoch|conv-epoch|iwae-epoch|pca|vae-run|conv-run|profile> [--key value]..."
    2

/// This program, to start our workers: the apphost, or `dotnet Bench.dll`.
let private self =
    let p = Environment.ProcessPath
    if Path.GetFileNameWithoutExtension p = "dotnet" then p, [ Reflection.Assembly.GetEntryAssembly().Location ]
    else p, []

let private failures = ResizeArray<string>()

/// Runs one child, echoing its output (indented) to stderr; its `@result` line, or None when it failed.
let private runChild (s: Settings) (label: string) (program: string) (args: string list) (env: (string * string) list) =
    let shown = env |> List.filter (fun (k, _) -> k <> "PYTHONNOUSERSITE") |> List.map (fun (k, v) -> $"{k}={v} ")
    log $"""{label}: {String.Concat shown}{Path.GetFileName program} {String.Join(" ", args)}"""
    let code, result = Peers.runForResult (eprintfn "    %s") s.Root env (TimeSpan.FromMinutes 60.0) program args
    match code, result with
    | 0, Some r -> Some r
    | code, _ ->
        let why = if result.IsNone then ", no result" else ""
        log $"{label} FAILED (exit {code}{why})"
        failures.Add label
        None

let private cpuModel () =
    try
        File.ReadAllLines "/proc/cpuinfo"
        |> Array.tryFind (fun l -> l.StartsWith "model name")
        |> Option.map (fun l -> l.Substring(l.IndexOf ':' + 1).Trim())
        |> Option.defaultValue "unknown CPU"
    with _ -> "unknown CPU"

let private loadAverage () =
    try (File.ReadAllText "/proc/loadavg").Split(' ') |> Array.take 3 |> String.concat " " with _ -> "n/a"

let run (s: Settings) =
    let started = DateTime.Now
    let loadStart = loadAverage ()
    Peers.ensurePackages ()
    let blas = Peers.ensureOpenBlas s.BlasFolder
    // --omp-wait-policy applies to every child, ours and the peers' alike (libtorch and python3-torch both
    // use libgomp); the profile also runs each side with the other policy.
    let waitEnv = match s.WaitPolicy with Some p -> [ "OMP_WAIT_POLICY", p ] | None -> []
    let otherWait = [ "OMP_WAIT_POLICY", (match s.WaitPolicy with Some _ -> null | None -> "PASSIVE") ]
    let otherWaitName = match s.WaitPolicy with Some _ -> "OMP_WAIT_POLICY unset" | None -> "OMP_WAIT_POLICY=PASSIVE"
    let peerEnv = Peers.env (Some blas) s.Threads @ waitEnv
    let refEnv = Peers.env None s.Threads @ waitEnv
    let linkage = Peers.torchBlasLinkage peerEnv
    let refLinkage = Peers.torchBlasLinkage refEnv
    let _, versions, _ =
        Peers.capture s.Root peerEnv Peers.Python
            [ "-c"; "import torch, sklearn, numpy; print(torch.__version__, sklearn.__version__, numpy.__version__)" ]
    let t = string s.Threads
    let results = Results()
    let add key (r: JsonObject option) =
        r |> Option.iter (fun r ->
            if not (results.ContainsKey key) then results[key] <- ResizeArray()
            results[key].Add r)
    let exe, pre = self
    let ours label worker extra env () =
        add label (runChild s label exe (pre @ [ "worker"; worker; "--threads"; t; "--data"; s.Data ] @ extra) (waitEnv @ env))
    let peer label script extra env () =
        add label (runChild s label Peers.Python ([ Path.Combine("benchmarks", script); "--threads"; t ] @ extra) env)
    let rows = [ "--rows"; string s.Rows ]
    let warm = [ "--warmup-steps"; string s.WarmupSteps ]
    let d = [ "--data"; s.Data ]

    if not s.NewOnly then
        // The peer's sgemm on Debian's reference BLAS, once: shows what LD_LIBRARY_PATH buys.
        let refN = min s.SgemmN 1024
        peer "torch-refblas.sgemm" "sgemm.py" [ "--n"; string refN; "--reps"; "3" ] refEnv ()
        let pairs =
            [ ours "ours.sgemm" "sgemm" [ "--n"; string s.SgemmN; "--reps"; "5" ] [],
              peer "torch.sgemm" "sgemm.py" [ "--n"; string s.SgemmN; "--reps"; "5" ] peerEnv
              ours "ours.vae-epoch" "vae-epoch" (rows @ warm) [], peer "torch.vae-epoch" "vae.py" (d @ rows @ warm @ [ "--mode"; "epoch" ]) peerEnv
              ours "ours.ae-epoch" "ae-epoch" (rows @ warm) [], peer "torch.ae-epoch" "ae.py" (d @ rows @ warm) peerEnv
              ours "ours.pca" "pca" (rows @ [ "--components"; "50" ]) [],
              peer "sklearn.pca" "pca.py" (d @ rows @ [ "--components"; "50" ]) peerEnv ]
        for r in 1 .. s.Reps do
            log $"repetition {r} of {s.Reps}"
            for a, b in pairs do
                if r % 2 = 1 then a (); b () else b (); a ()
        // Once: 10 epochs with RSS readings, the test loss, the importance-weighted likelihood.
        let iw = [ "--epochs"; string s.RunEpochs; "--iw-samples"; string s.IwSamples; "--iw-rows"; string s.IwRows ]
        ours "ours.vae-run" "vae-run" (rows @ iw) [] ()
        peer "torch.vae-run" "vae.py" (d @ rows @ [ "--mode"; "run" ] @ iw) peerEnv ()
        // Where the time of a VAE step goes, with the library's BLAS settings and without them.
        let steps = [ "--steps"; string s.ProfileSteps ]
        let profiles =
            [ ours "profile.ours" "profile" (rows @ steps) []
              ours "profile.ours.mkl-keep" "profile" (rows @ steps) [ Research.Core.Native.VendorCheckVariable, "keep" ]
              peer "profile.torch" "vae.py" (d @ rows @ steps @ [ "--mode"; "profile" ]) peerEnv
              (fun () -> add "profile.ours.1-thread" (runChild s "profile.ours.1-thread" exe (pre @ [ "worker"; "profile"; "--threads"; "1"; "--data"; s.Data ] @ rows @ steps) []))
              (fun () ->
                  add "profile.torch.1-thread"
                      (runChild s "profile.torch.1-thread" Peers.Python ([ Path.Combine("benchmarks", "vae.py"); "--threads"; "1" ] @ d @ rows @ steps @ [ "--mode"; "profile" ]) (Peers.env (Some blas) 1 @ waitEnv)))
              ours "profile.ours.other-wait" "profile" (rows @ steps) otherWait
              peer "profile.torch.other-wait" "vae.py" (d @ rows @ steps @ [ "--mode"; "profile" ]) (peerEnv @ otherWait)
              ours "sgemm.mkl-keep" "sgemm" [ "--n"; string s.SgemmN; "--reps"; "5" ] [ Research.Core.Native.VendorCheckVariable, "keep" ]
              ours "sgemm.cbwr-off" "sgemm" [ "--n"; string s.SgemmN; "--reps"; "5" ] [ "MKL_CBWR", "" ] ]
        for r in 1 .. s.ProfileReps do
            for p in (if r % 2 = 1 then profiles else List.rev profiles) do p ()
        // Where resident memory goes during training steps (see Worker.memory), and Pca.fit's phases.
        ours "pca-profile" "pca-profile" (rows @ [ "--components"; "50" ]) [] ()
        for variant in [ "backward"; "fit-step"; "torch-adam" ] do
            add $"memory.{variant}" (runChild s $"memory.{variant}" exe (pre @ [ "worker"; "memory"; "--threads"; t; "--variant"; variant; "--steps"; string s.MemorySteps ]) waitEnv)

    // The rows of issue 11: a convolutional VAE, the default VAE on research code's own modules (autograd),
    // the IWAE. The conv and IWAE epochs are partial (ConvRows, IwaeRows) and extrapolated in the report.
    let epochRows n w = [ "--rows"; string n; "--warmup-steps"; string w ]
    let conv = epochRows s.ConvRows s.ConvWarmupSteps
    let iwae = epochRows s.IwaeRows s.IwaeWarmupSteps
    let ownVae = ours "ours.own-vae-epoch" "own-vae-epoch" (rows @ warm) []
    let groups =
        [ [ ours "ours.conv-epoch" "conv-epoch" conv []; peer "torch.conv-epoch" "conv_vae.py" (d @ conv @ [ "--mode"; "epoch" ]) peerEnv ]
          [ ours "ours.iwae-epoch" "iwae-epoch" iwae []; peer "torch.iwae-epoch" "iwae.py" (d @ iwae) peerEnv ]
          // Compared with the fast path and PyTorch's VAE epoch: measured here when the main pairs do not run.
          (if s.NewOnly then
               [ ours "ours.vae-epoch" "vae-epoch" (rows @ warm) []; ownVae
                 peer "torch.vae-epoch" "vae.py" (d @ rows @ warm @ [ "--mode"; "epoch" ]) peerEnv ]
           else [ ownVae ]) ]
    for r in 1 .. s.NewReps do
        log $"issue 11 rows: repetition {r} of {s.NewReps}"
        for g in groups do
            for run in (if r % 2 = 1 then g else List.rev g) do run ()
    // Where a conv VAE step goes, layer by layer, each side once.
    let convSteps = [ "--steps"; string (if s.Quick then 5 else 20) ]
    ours "profile.ours.conv" "conv-profile" convSteps [] ()
    peer "profile.torch.conv" "conv_vae.py" (d @ convSteps @ [ "--mode"; "profile" ]) peerEnv ()
    // Once each: the conv VAE's test −ELBO after RunEpochs epochs.
    let convRun = [ "--epochs"; string s.RunEpochs ]
    ours "ours.conv-run" "conv-run" (rows @ convRun) [] ()
    peer "torch.conv-run" "conv_vae.py" (d @ rows @ convRun @ [ "--mode"; "run" ]) peerEnv ()

    let mklPath =
        match results.TryGetValue "ours.sgemm" with
        | true, l when l.Count > 0 && not (isNull l.[0].["mkl_code_path"]) -> l.[0].["mkl_code_path"].GetValue<string>()
        | _ -> "not recorded"
    let mallocTuning =
        match results.TryGetValue "ours.sgemm" with
        | true, l when l.Count > 0 && not (isNull l.[0].["malloc_tuning"]) -> l.[0].["malloc_tuning"].GetValue<string>()
        | _ -> "not recorded"
    let mode =
        if s.NewOnly then "**--only new** (the rows of issue 11 and the VAE epoch pair only)"
        elif s.Quick then "**--quick** (smoke test: small sizes, 1 repetition; not a measurement)" else "full run"
    let header =
        [ String.Format(inv, "Run {0:yyyy-MM-dd HH:mm} to {1:HH:mm}, {2}; {3}, {4} cores, {5} threads on both sides; load average {6} at the start, {7} at the end.",
                        started, DateTime.Now, mode, cpuModel (), Environment.ProcessorCount, s.Threads, loadStart, loadAverage ())
          "Ours: Research.Core on TorchSharp-cpu 0.107.0 (libtorch 2.10 with MKL; the library sets MKL_CBWR=AUTO,STRICT and, on AMD CPUs, lets MKL choose kernels by CPU features: "
          + mklPath + "; and raises glibc malloc's mmap threshold and top padding so that a step's large buffers are reused: " + mallocTuning + "). "
          + $"Peers: Debian's python3-torch, scikit-learn, numpy ({versions.Trim()}) on Debian's OpenBLAS 0.3.21 (libopenblas0-openmp, unpacked privately) "
          + $"through LD_LIBRARY_PATH: " + String.Join(", ", linkage) + "; without it: " + String.Join(", ", refLinkage) + "."
          (match s.WaitPolicy with
           | Some p -> $"Every child ran with OMP_WAIT_POLICY={p} (--omp-wait-policy). "
           | None -> "OMP_WAIT_POLICY as inherited (unset: libgomp spins at its barriers). ")
          + $"Times are medians over {s.Reps} alternating repetitions ({s.NewReps} for the conv VAE, own-module VAE and IWAE rows), each a fresh process, [min–max] after them; "
          + "ours / peer is the ratio of the medians, [min–max] of the per-repetition ratios (each pair ran back to back)." ]
    let md = Analysis.markdown s.NewOnly s.Rows s.WarmupSteps s.RunEpochs s.IwSamples s.IwRows otherWaitName results header
    Directory.CreateDirectory s.Out |> ignore
    // A partial run (--only new) never overwrites the full report.
    let stem = if s.NewOnly then "bench-new" else "bench"
    let mdPath = Path.Combine(s.Out, stem + ".md")
    File.WriteAllText(mdPath, md)
    let raw = JsonObject()
    for KeyValue(k, v) in results do raw[k] <- JsonArray([| for o in v -> JsonNode.Parse(o.ToJsonString()) |])
    File.WriteAllText(Path.Combine(s.Out, stem + ".json"), raw.ToJsonString(Text.Json.JsonSerializerOptions(WriteIndented = true)))
    printfn "\n%s" md
    printfn "Wrote %s and %s.json" mdPath stem
    if failures.Count > 0 then
        eprintfn "Failed children: %s" (String.Join(", ", failures))
        1
    else 0

[<EntryPoint>]
let main argv =
    match List.ofArray argv with
    | "worker" :: rest -> Worker.run rest
    | args ->
        let rec parse (m: Map<string, string>) = function
            | "--quick" :: rest -> parse (m.Add("quick", "true")) rest
            | (k: string) :: v :: rest when k.StartsWith "--" -> parse (m.Add(k.Substring 2, v)) rest
            | [] -> Some m
            | _ -> None
        match parse Map.empty args with
        | None -> usage ()
        | Some o ->
            let root = Directory.GetCurrentDirectory()
            let quick = o.ContainsKey "quick"
            let i k d = o.TryFind k |> Option.map int |> Option.defaultValue d
            let settings =
                { Quick = quick
                  Reps = i "reps" (if quick then 1 else 5)
                  Rows = i "rows" (if quick then 6000 else 60000)
                  RunEpochs = i "epochs" (if quick then 2 else 10)
                  IwSamples = i "iw-samples" (if quick then 100 else 5000)
                  IwRows = i "iw-rows" (if quick then 100 else 1000)
                  WarmupSteps = i "warmup-steps" (if quick then 20 else 400)
                  NewReps = i "new-reps" (if quick then 1 else 3)
                  ConvRows = i "conv-rows" (if quick then 1280 else 12800)
                  IwaeRows = i "iwae-rows" (if quick then 1000 else 12000)
                  ConvWarmupSteps = i "conv-warmup-steps" (if quick then 5 else 20)
                  IwaeWarmupSteps = i "iwae-warmup-steps" (if quick then 20 else 200)
                  NewOnly = (match o.TryFind "only" with
                             | None | Some "all" -> false
                             | Some "new" -> true
                             | Some other -> failwithf "--only %s: expected new or all" other)
                  SgemmN = i "sgemm-n" (if quick then 1024 else 4096)
                  ProfileSteps = i "profile-steps" (if quick then 30 else 300)
                  ProfileReps = i "profile-reps" (if quick then 1 else 3)
                  MemorySteps = i "memory-steps" (if quick then 200 else 600)
                  WaitPolicy = o.TryFind "omp-wait-policy" |> Option.map (fun p -> p.ToUpperInvariant())
                  Threads = i "threads" Environment.ProcessorCount
                  Data = Path.GetFullPath(o.TryFind "data" |> Option.defaultValue (Path.Combine(root, "data", "mnist")))
                  Out = Path.GetFullPath(o.TryFind "out" |> Option.defaultValue (Path.Combine(root, "paper", "results")))
                  BlasFolder = Path.GetFullPath(o.TryFind "blas" |> Option.defaultValue (Path.Combine(root, "data", "bench", "openblas")))
                  Root = root }
            run settings

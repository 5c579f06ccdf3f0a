/// Figure 2 at the paper's budget: every curve trained to 10^8 training samples (1667 epochs of 60000
/// images) through resumable training, so the run (hours on two cores) can be stopped and restarted any
/// number of times. Each curve keeps, under runs/fig2-paper/: its Fit run checkpoint (weights, Adagrad
/// state, random states, history), its chosen step size and the points measured so far. That folder is
/// tracked by git (the rest of runs/ is not): a session's checkout is fresh, so the run survives from one
/// session to the next only through commits. Two curves train at a time, each straight to 10^8, so that
/// few checkpoints (about 7 MB each) are in flight; a finished curve keeps its points and drops its
/// checkpoint. Curves not reached yet show the points an earlier run published (same code, same seeds:
/// the re-measured points are compared with them and any difference is logged).
module Reproduce.Fig2PaperBudget

open System
open System.Globalization
open System.IO
open System.Runtime.InteropServices
open TorchSharp
open Research.Core
open Reproduce.PaperModels

/// Epochs after which a curve has seen 10^7 and then 10^8 samples of 60000 images (both measured; the
/// second is where a curve ends).
let stages = [ 167; 1667 ]
let private finalEpoch = List.last stages

/// The bound after `Epoch` epochs, with the run's cost up to there.
type Point =
    { Algorithm: string; Latent: int; Epoch: int; Samples: int64; Train: float; Test: float
      /// Wall-clock training seconds since the run began, summed over its resumptions (Fit's Elapsed).
      ElapsedSeconds: float
      /// Wall-clock seconds per epoch since the previous point, its evaluations included (and any time
      /// the process was paused or starved by other work).
      SecondsPerEpoch: float
      /// The process's resident set size when the point was measured.
      RssMiB: float
      /// CPU seconds per epoch of the thread that trains the curve (one thread per curve), since the
      /// previous point, evaluations included: unlike the wall clock, not inflated by pauses or by other
      /// jobs on the machine. NaN in points written before this column existed.
      CpuSecondsPerEpoch: float
      /// The C heap in use when the point was measured (ProcessMemory.heapInUseMiB: every tensor's storage,
      /// not what malloc keeps free), the whole process's. NaN in points written before this column existed.
      HeapMiB: float }

let private inv = CultureInfo.InvariantCulture
let header = "algorithm,latent,epoch,samples,train_bound,test_bound,elapsed_s,seconds_per_epoch,rss_mib,cpu_s_per_epoch,heap_mib"
let private toLine p =
    String.Join(",", p.Algorithm, string p.Latent, string p.Epoch, string p.Samples, p.Train.ToString("R", inv),
                p.Test.ToString("R", inv), p.ElapsedSeconds.ToString("F1", inv), p.SecondsPerEpoch.ToString("F3", inv), p.RssMiB.ToString("F1", inv), p.CpuSecondsPerEpoch.ToString("F3", inv), p.HeapMiB.ToString("F1", inv))
let private ofLine (l: string) =
    let c = l.Split ','
    { Algorithm = c.[0]; Latent = int c.[1]; Epoch = int c.[2]; Samples = int64 c.[3]; Train = Double.Parse(c.[4], inv)
      Test = Double.Parse(c.[5], inv)
      ElapsedSeconds = Double.Parse(c.[6], inv); SecondsPerEpoch = Double.Parse(c.[7], inv); RssMiB = Double.Parse(c.[8], inv)
      CpuSecondsPerEpoch = if c.Length > 9 then Double.Parse(c.[9], inv) else nan
      HeapMiB = if c.Length > 10 then Double.Parse(c.[10], inv) else nan }

/// A sample count as the paper writes it, e.g. 1.00·10⁷ (0 as 0).
let samplesText (samples: int64) =
    if samples <= 0L then "0"
    else
        let e = int (floor (log10 (float samples)))
        let superscript = String.map (fun c -> "⁰¹²³⁴⁵⁶⁷⁸⁹".[int c - int '0']) (string e)
        (float samples / 10.0 ** float e).ToString("F2", inv) + "·10" + superscript

/// Reads a points CSV (as this module writes it).
let read (file: string) = File.ReadAllLines file |> Array.skip 1 |> Array.map ofLine |> List.ofArray

let private writeText (file: string) (text: string) =
    AtomicFile.write file (fun s ->
        // AtomicFile flushes and closes the stream itself.
        use w = new StreamWriter(s, Text.UTF8Encoding false, 65536, true)
        w.Write text)

/// Writes a points CSV atomically.
let write (file: string) (points: Point seq) = writeText file (String.Join("\n", Seq.append [ header ] (Seq.map toLine points)) + "\n")

/// Epochs 10^(k/10), k = 0 … 32: about ten per decade up to 1585.
let private logSpaced = Seq.init 33 (fun k -> int (Math.Round(10.0 ** (float k / 10.0)))) |> Set.ofSeq

/// The epochs at which the bounds are measured: the first ten, then about ten per decade of samples, every
/// 50th, and each stage's end; a few dozen evaluations of 20000 images in a run of 1667 epochs.
let isMeasured (epoch: int) =
    epoch <= 10 || logSpaced.Contains epoch || epoch % 50 = 0 || List.contains epoch stages

[<Struct; StructLayout(LayoutKind.Sequential)>]
type private Timespec =
    val mutable Seconds: int64
    val mutable Nanoseconds: int64

[<DllImport("libc", EntryPoint = "clock_gettime")>]
extern int private clock_gettime(int clock, Timespec& time)

/// CPU seconds of the calling thread (Linux's CLOCK_THREAD_CPUTIME_ID); the process's elsewhere.
let private threadCpuSeconds () =
    let mutable t = Timespec()
    if OperatingSystem.IsLinux() && clock_gettime (3, &t) = 0 then float t.Seconds + float t.Nanoseconds * 1e-9
    else Diagnostics.Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds

/// Curves trained at once, each on one thread with libtorch set to one thread. An epoch of 784-500-3 (Adagrad,
/// batch 100) took 1.75 s on both cores of this 2-core machine, and 2.3 s on one core beside a second
/// curve, so two at a time do about 1.5× the epochs per second.
let workers = max 1 (min Environment.ProcessorCount (2 * Fig2Bound.latentSizes.Length))

/// What a curve trains on: MNIST's grey levels as Bernoulli targets (the paper-budget run), or the images
/// binarised afresh in every minibatch and scored on one fixed binarisation (Fig2Binarised's check of the
/// train–test gap). Everything else is the same: model, initialisation, seeds, step size, weight decay.
type Data =
    | Grey
    | Binarised

/// The seed of the one binarisation the Binarised curves are scored on (train subset and test set).
let scoreSeed = 0

/// The folder of one curve's run state.
let folderOf (data: Data) (cache: string) (algorithm: Algorithm) (latent: int) =
    let run = match data with Grey -> "fig2-paper" | Binarised -> "fig2-binarised"
    Path.Combine(cache, run, $"{name algorithm}-z{latent}-h{Fig2Bound.hidden}")

/// The folder of one paper-budget curve's run state.
let folder (cache: string) (algorithm: Algorithm) (latent: int) = folderOf Grey cache algorithm latent

/// The epochs each curve in this process (by folder) still has to train, and the CPU seconds per epoch of
/// the latest points, for the estimate of the time left that the run logs every 100 epochs.
let private epochsLeft = Collections.Concurrent.ConcurrentDictionary<string, int>()
let private recentPace = Collections.Concurrent.ConcurrentQueue<float>()

/// The run's estimated time left: the epochs every curve still has to train, at the median CPU seconds per
/// epoch of the latest 20 points, `workers` curves at a time.
let private timeLeft () =
    let remaining = epochsLeft.Values |> Seq.sum
    let pace = recentPace.ToArray() |> Array.sort
    if pace.Length = 0 then None
    else Some(float remaining * pace.[pace.Length / 2] / float workers / 3600.0, remaining)

/// Each start of training a curve, in its folder's sessions.csv: the first epoch that start trained and the
/// commit it ran from, so that a run resumed across changes of the code says which code trained which epochs.
let private sessionsHeader = "first_epoch,commit,first_epoch_done_utc"

/// The starts recorded for one curve: (first epoch, commit), in order; empty where none were recorded.
let sessions (cache: string) (algorithm: Algorithm) (latent: int) =
    let file = Path.Combine(folder cache algorithm latent, "sessions.csv")
    if not (File.Exists file) then []
    else
        [ for l in File.ReadAllLines file |> Array.skip 1 do
            match l.Split ',' with
            | [| epoch; commit; _ |] -> yield int epoch, commit
            | _ -> () ]

/// Advances one curve to `epochs` (resuming its run checkpoint) and returns its points up to there.
/// `earlier` are the curve's points as an earlier run published them: taken as they are when the curve has
/// no run state and they reach `epochs`, and otherwise the reference its re-measured points are checked against.
/// `onPoint` is given the curve as it stands after each point (the earlier run's later points appended).
let curve (data: Data) (cache: string) (searchRows: int64) (epochs: int) (algorithm: Algorithm) (latent: int) (earlier: Point list)
          (onPoint: Point list -> unit) (train: torch.Tensor) (test: torch.Tensor) =
    let dir = folderOf data cache algorithm latent
    Directory.CreateDirectory dir |> ignore
    let pointsFile = Path.Combine(dir, "points.csv")
    let checkpoint = Path.Combine(dir, "run.checkpoint")
    let saved = if File.Exists pointsFile then read pointsFile else []
    let reached = if List.isEmpty saved then earlier else saved
    if reached |> List.exists (fun p -> p.Epoch = epochs) then reached |> List.filter (fun p -> p.Epoch <= epochs)
    else
        // The step size is chosen once and kept: a rerun of the search could break a near-tie differently. It is
        // searched on the grey levels for either kind of data, so a Binarised curve takes its Grey twin's.
        let lrFile = Path.Combine(dir, "step-size.txt")
        let lr =
            if File.Exists lrFile then Double.Parse(File.ReadAllText lrFile, inv)
            else
                let lr = stepSize searchRows algorithm latent Fig2Bound.hidden train
                writeText lrFile (lr.ToString("R", inv))
                lr
        Log.line $"{name algorithm}, N_z = {latent}: step size {lr}, to epoch {epochs} ({int64 epochs * train.shape.[0]:N0} samples); resuming from {dir}"
        use model = vae latent Fig2Bound.hidden
        let scored (images: torch.Tensor) =
            use first = images.narrow(0L, 0L, min Fig2Bound.scoredRows images.shape.[0])
            match data with
            | Grey -> first.alias ()
            | Binarised -> Mnist.binarize first scoreSeed
        use trainScored = scored train
        use testScored = scored test
        // Points from before the checkpoint's epoch survive a crash; any later ones are measured again
        // (the resumed run is bit-identical, so they come out the same).
        let points = ResizeArray<Point>(saved)
        // The CPU clock since the last point measured by this process (or since Fit began: a resumed
        // run's first report names the epoch after the checkpoint's).
        let lastCpu = ref nan
        let lastCpuEpoch = ref -1
        let progress (r: Training.EpochReport) =
            points.RemoveAll(fun p -> p.Epoch >= r.Epoch) |> ignore
            if lastCpuEpoch.Value < 0 then
                lastCpuEpoch.Value <- r.Epoch - 1
                let file = Path.Combine(dir, "sessions.csv")
                if not (File.Exists file) then File.WriteAllText(file, sessionsHeader + "\n")
                let finished = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", inv)
                File.AppendAllText(file, $"{r.Epoch},{Commit.current ()},{finished}\n")
            if isMeasured r.Epoch then
                let cpu = threadCpuSeconds ()
                let cpuPerEpoch = (cpu - lastCpu.Value) / float (r.Epoch - lastCpuEpoch.Value)
                lastCpu.Value <- cpu
                lastCpuEpoch.Value <- r.Epoch
                // Memory malloc holds free goes back to the system first, so the RSS follows what is in use,
                // not what the pair of curves in flight (or a resume) happened to free before.
                Native.releaseFreedMemory ()
                let elapsed = r.Elapsed.TotalSeconds
                let prevEpoch, prevElapsed = if points.Count = 0 then 0, 0.0 else points.[points.Count - 1].Epoch, points.[points.Count - 1].ElapsedSeconds
                let p = { Algorithm = name algorithm; Latent = latent; Epoch = r.Epoch; Samples = r.ExamplesSeen
                          Train = model.Elbo(trainScored, 1, 0); Test = model.Elbo(testScored, 1, 0)
                          ElapsedSeconds = elapsed; SecondsPerEpoch = (elapsed - prevElapsed) / float (r.Epoch - prevEpoch)
                          RssMiB = ProcessMemory.residentMiB (); CpuSecondsPerEpoch = cpuPerEpoch
                          HeapMiB = ProcessMemory.heapInUseMiB () }
                match earlier |> List.tryFind (fun e -> e.Epoch = p.Epoch) with
                | Some e when e.Train <> p.Train || e.Test <> p.Test ->
                    // The size says whether it is the last bits (another CPU or build, see docs/troubleshooting.md) or a change of result.
                    Log.line $"  {name algorithm} N_z = {latent} epoch {r.Epoch}: differs from the earlier run's point (train {e.Train:R}, test {e.Test:R} then; by {abs (p.Train - e.Train):G3} and {abs (p.Test - e.Test):G3} nats)"
                | _ -> ()
                points.Add p
                write pointsFile points
                epochsLeft.[dir] <- max 0 (epochs - r.Epoch)
                if r.Epoch > 1 && not (Double.IsNaN cpuPerEpoch) then
                    recentPace.Enqueue cpuPerEpoch
                    while recentPace.Count > 20 do recentPace.TryDequeue() |> ignore
                if r.Epoch % 100 = 0 then
                    match timeLeft () with
                    | Some(hours, epochsLeft) -> Log.line $"  the run: {epochsLeft} epochs left over all curves, about {hours:F1} h at the latest pace"
                    | None -> ()
                onPoint (List.ofSeq points @ (earlier |> List.filter (fun e -> e.Epoch > p.Epoch)))
                Log.line $"  {name algorithm} N_z = {latent} epoch {r.Epoch}: bound train {p.Train:F2}, test {p.Test:F2}; {p.SecondsPerEpoch:F2} s/epoch ({p.CpuSecondsPerEpoch:F2} CPU s), RSS {p.RssMiB:F0} MiB, heap {p.HeapMiB:F0} MiB"
        let config = { adagrad train.shape.[0] lr epochs with
                        Progress = progress; CheckpointPath = Some checkpoint; DynamicBinarization = (data = Binarised) }
        lastCpu.Value <- threadCpuSeconds ()
        fit algorithm model train config |> ignore
        // Nothing needs a finished curve's checkpoint again (its points are kept), and it is megabytes in git.
        if epochs >= finalEpoch then File.Delete checkpoint
        List.ofSeq points

/// How often a curve is started (the first time and its resumptions after failures) before the run gives up.
let private maxAttempts = 3

/// Advances every curve to 10^8 samples, two at a time, those with the most epochs left first (a fresh run
/// in the order N_z = 3, 5, …, AEVB then wake-sleep), writing `results`/fig2_bound_paper_budget.csv and
/// `figures`/fig2_bound_paper_budget.png after each point, so that the files always show what has been
/// reached; curves not reached yet keep the points that file held before. Returns the paths and the points.
let run (cache: string) (results: string) (figures: string) (searchRows: int64) (train: torch.Tensor) (test: torch.Tensor) =
    let runs = [ for latent in Fig2Bound.latentSizes do for algorithm in [ Aevb; WakeSleep ] -> latent, algorithm ]
    Directory.CreateDirectory results |> ignore
    let csv = Path.Combine(results, "fig2_bound_paper_budget.csv")
    let png = Path.Combine(figures, "fig2_bound_paper_budget.png")
    let latest = Collections.Generic.Dictionary<int * Algorithm, Point list>()
    let published = if File.Exists csv then read csv else []
    let earlier (latent, algorithm) = published |> List.filter (fun p -> p.Latent = latent && p.Algorithm = name algorithm)
    for r in runs do
        match earlier r with
        | [] -> ()
        | ps -> latest.[r] <- ps
    // Where each curve stands before this run trains it: its own points (a checkpoint may be a little ahead),
    // or the end when the published points reach it.
    for (latent, algorithm) as r in runs do
        let pointsFile = Path.Combine(folder cache algorithm latent, "points.csv")
        let own = if File.Exists pointsFile then read pointsFile |> List.map (fun p -> p.Epoch) else []
        let doneBefore = earlier r |> List.exists (fun p -> p.Epoch >= finalEpoch)
        epochsLeft.[folder cache algorithm latent] <- if doneBefore then 0 else finalEpoch - min finalEpoch (List.fold max 0 own)
    let publish () =
        let points = [ for r in runs do match latest.TryGetValue r with | true, ps -> yield! ps | _ -> () ]
        write csv points
        let panel latent (plot: ScottPlot.Plot) =
            let mine = points |> List.filter (fun p -> p.Latent = latent)
            let reached = if mine.IsEmpty then 0L else mine |> List.map (fun p -> p.Samples) |> List.max
            Curves.drawPanel plot $"MNIST, N_z = {latent} (to {samplesText reached} samples)" "lower bound per datapoint (nats)"
                mine (fun p -> p.Algorithm, p.Samples, p.Train, p.Test)
        Plots.panels png [ for latent in Fig2Bound.latentSizes -> panel latent ] 3 620 460 |> ignore
        points
    let total = runs.Length
    // Longest first, so that a resumed run does not end with one core training a whole curve alone: one
    // resumed with 1067 and 1317 epochs left on two curves and 1666 on a third takes about 3.5 h on two cores
    // in the paper's order and 2.3 h so. The sort is stable: a fresh run keeps the paper's order.
    let longestFirst = runs |> List.sortByDescending (fun (latent, algorithm) -> epochsLeft.[folder cache algorithm latent])
    let tasks = Collections.Concurrent.ConcurrentQueue(longestFirst)
    let sync = obj ()
    let finished = ref 0
    let points = ref []
    let work () =
        // libtorch's thread count is the calling thread's (OpenMP), so each worker sets its own; always one,
        // so that a resumed curve computes exactly what the uninterrupted one would have.
        torch.set_num_threads 1
        let mutable next = Unchecked.defaultof<int * Algorithm>
        while tasks.TryDequeue(&next) do
            let (latent, algorithm) as r = next
            let show ps = lock sync (fun () -> latest.[r] <- ps; points.Value <- publish ())
            let firstLine (e: exn) = e.Message.Split('\n').[0]
            // A curve that fails resumes from its run checkpoint, which computes what it would have computed
            // without the failure: a transient fault costs the epoch in progress, not the worker (an hour of a
            // core, before, as the fault surfaced only when the other worker had finished). The same curve
            // failing three times is not transient and stops the run.
            let rec attempt k =
                try show (curve Grey cache searchRows finalEpoch algorithm latent (earlier r) show train test)
                with e when k < maxAttempts ->
                    Log.line $"  {name algorithm} N_z = {latent} failed ({e.GetType().Name}: {firstLine e}); resuming it from its checkpoint, attempt {k + 1} of {maxAttempts}"
                    attempt (k + 1)
            try
                attempt 1
                lock sync (fun () ->
                    finished.Value <- finished.Value + 1
                    Log.fraction finished.Value total)
            with e ->
                Log.line $"  {name algorithm} N_z = {latent} failed {maxAttempts} times ({e.GetType().Name}: {firstLine e}); the other workers stop after their current curve"
                tasks.Clear()
                reraise ()
    Log.line $"{workers} curves at a time, one thread each"
    let running = [ for _ in 1 .. workers -> Threading.Tasks.Task.Factory.StartNew(work, Threading.Tasks.TaskCreationOptions.LongRunning) ]
    try Threading.Tasks.Task.WaitAll(Array.ofList running)
    with :? AggregateException as e -> Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions.[0]).Throw()
    [ csv; png ], points.Value

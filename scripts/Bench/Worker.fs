/// Our side of each measurement, run in a child process of the orchestrator (`Bench worker <name> …`)
/// so that every figure comes from a fresh process, as the Python peers' do, and RSS is this model's own.
module Bench.Worker

open System
open System.Diagnostics
open System.Runtime.InteropServices
open System.Text.Json.Nodes
open TorchSharp
open Research.Core
open Bench.Common

type Tensor = torch.Tensor

let private put (o: JsonObject) (key: string) (value: obj) =
    o[key] <-
        match value with
        | :? int as i -> JsonValue.Create i :> JsonNode
        | :? float as x -> JsonValue.Create x :> JsonNode
        | :? string as v -> JsonValue.Create v :> JsonNode
        | :? JsonNode as n -> n
        | v -> failwithf "put: %A" v

let private arr (xs: float seq) = JsonArray([| for x in xs -> JsonValue.Create x :> JsonNode |])

/// Loads TorchSharp with the library's settings (Native.ensureLoaded), records the default thread count,
/// then sets `threads`.
let private setup (threads: int) =
    Native.ensureLoaded ()
    let defaultThreads = torch.get_num_threads ()
    torch.set_num_threads threads
    defaultThreads

let private facts (o: JsonObject) defaultThreads =
    put o "threads" (torch.get_num_threads ())
    put o "default_threads" (defaultThreads)
    put o "mkl_cbwr" ((match Environment.GetEnvironmentVariable "MKL_CBWR" with null -> "(unset)" | v -> v))
    put o "mkl_code_path" (sprintf "%A" (Native.mklCodePath ()))
    put o "malloc_tuning" (sprintf "%A" (Native.mallocTuning ()))
    o

let private train (data: string) (rows: int) =
    let t, _ = Mnist.load data Mnist.Train
    if rows >= int t.shape.[0] then t
    else
        let s = t.narrow(0L, 0L, int64 rows).clone()
        t.Dispose()
        s

[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type private IntToInt = delegate of int -> int
[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type private NoArgInt = delegate of unit -> int
[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type private VersionString = delegate of byte[] * int -> unit

/// MKL's version and its conditional-numerical-reproducibility state (mkl_cbwr_get(MKL_CBWR_ALL) and the
/// branch AUTO resolves to on this CPU), read from the MKL statically linked into the loaded libtorch_cpu.
let private mklFacts (o: JsonObject) =
    try
        let lib = Native.loadedLibraries () |> List.find (fun p -> IO.Path.GetFileName(p).StartsWith "libtorch_cpu")
        let h = NativeLibrary.Load lib
        let get name = NativeLibrary.GetExport(h, name)
        let buf = Array.zeroCreate<byte> 256
        Marshal.GetDelegateForFunctionPointer<VersionString>(get "MKL_Get_Version_String").Invoke(buf, buf.Length)
        put o "mkl_version" (Text.Encoding.ASCII.GetString(buf).TrimEnd('\000').Trim())
        let cbwr = Marshal.GetDelegateForFunctionPointer<IntToInt>(get "mkl_serv_cbwr_get").Invoke(-1)
        put o "mkl_cbwr_get_all" cbwr
        put o "mkl_cbwr_auto_branch" (Marshal.GetDelegateForFunctionPointer<NoArgInt>(get "mkl_serv_cbwr_get_auto_branch").Invoke())
    with e -> put o "mkl_error" e.Message

/// The best rate of `reps` products of two n×n float32 matrices (torch.mm): the machine's sgemm peak as
/// this process's libtorch/MKL reaches it.
let sgemm threads (n: int) (reps: int) =
    let dt = setup threads
    use g = new torch.Generator(0UL)
    use x = torch.randn([| int64 n; int64 n |], generator = g)
    use y = torch.randn([| int64 n; int64 n |], generator = g)
    (torch.mm(x, y)).Dispose()
    let best =
        [ for _ in 1 .. reps -> snd (time (fun () -> (torch.mm(x, y)).Dispose())) ] |> List.min
    let o = JsonObject()
    put o "n" (n)
    put o "best_s" (best)
    put o "gflops" (2.0 * float n ** 3.0 / best / 1e9)
    mklFacts o
    emit (facts o dt)

let private vaeConfig = { Vae.defaults 784 20 with Device = "cpu" }
let private aeConfig: Autoencoder.AutoencoderConfig =
    { InputSize = 784; LatentSize = 20; HiddenSizes = [ 256; 64 ]; Linear = false; Activation = Mlp.ReLU; Init = Mlp.Uniform; Convolutional = None; Seed = 0; Device = "cpu" }
/// The convolutional VAE of benchmarks/conv_vae.py: two stride-2 convolutions (32 and 64 channels) on 1×28×28.
let private convConfig =
    { vaeConfig with HiddenSizes = [ 32; 64 ]; Convolutional = Some { Channels = 1; Height = 28; Width = 28 } }
/// Burda et al.'s MNIST IWAE of benchmarks/iwae.py: 784-200-200-50 tanh, K = 5.
let private iwaeConfig =
    { Vae.defaults 784 50 with HiddenSizes = [ 200; 200 ]; Activation = Mlp.Tanh; Objective = Vae.ImportanceWeighted; Samples = 5; Device = "cpu" }
/// The IWAE's training: minibatches of 20, each binarised afresh.
let private iwaeTraining = { Training.defaults with BatchSize = 20; DynamicBinarization = true }

/// The default VAE (784-400-20) on research code's own modules: plain TorchSharp Sequentials of Linear and
/// ReLU, which Fit trains through autograd (the closed-form fast path is only for the library's MLPs).
let private ownVae () =
    let layers (sizes: int list) =
        let n = sizes.Length - 1
        torch.nn.Sequential(
            [| for i, (a, b) in List.indexed (List.pairwise sizes) do
                 yield struct ($"linear{i}", torch.nn.Linear(int64 a, int64 b) :> torch.nn.Module<Tensor, Tensor>)
                 if i < n - 1 then yield struct ($"relu{i}", torch.nn.ReLU() :> torch.nn.Module<Tensor, Tensor>) |])
    // The modules keep the weights they are built with; TorchSharp draws them from the global generator.
    torch.manual_seed 0L |> ignore
    new Vae.VariationalAutoencoder(vaeConfig, layers [ 784; 400; 40 ], layers [ 20; 400; 784 ])

/// One training epoch through the public Fit, after a warm-up Fit on `warmupSteps` minibatches. `model`:
/// "vae" (the default VAE, closed-form gradient), "own-vae" (the same on own modules), "conv-vae", "iwae"
/// (batch 20, dynamic binarisation) or "ae". `rows` below 60000 time a partial epoch.
let epoch (model: string) threads data rows warmupSteps (weightDecay: float) =
    let dt = setup threads
    use x = train data rows
    let training = if model = "iwae" then iwaeTraining else Training.defaults
    let cfg = { training with Epochs = 1; WeightDecay = weightDecay }
    use warm = x.narrow(0L, 0L, int64 (min rows (warmupSteps * cfg.BatchSize)))
    let vae (m: Vae.VariationalAutoencoder) =
        (fun (d: Tensor) -> m.Fit(d, cfg)), (m :> IDisposable), (fun () -> m.Networks.Parameters)
    let run, m, parameters =
        match model with
        | "vae" -> vae (new Vae.VariationalAutoencoder(vaeConfig))
        | "own-vae" -> vae (ownVae ())
        | "conv-vae" -> vae (new Vae.VariationalAutoencoder(convConfig))
        | "iwae" -> vae (new Vae.VariationalAutoencoder(iwaeConfig))
        | "ae" ->
            let m = new Autoencoder.Autoencoder(aeConfig)
            (fun (d: Tensor) -> m.Fit(d, cfg)), (m :> IDisposable), (fun () -> m.Networks.Parameters)
        | other -> failwithf "epoch: unknown model %s" other
    use _m = m
    let _, warmupSeconds = time (fun () -> run warm)
    let reports, seconds = time (fun () -> run x)
    let o = JsonObject()
    put o "epoch_s" (seconds)
    put o "warmup_s" (warmupSeconds)
    // A fingerprint of the trained weights (Σ|w| in float64), to compare two builds bit for bit.
    put o "weights_l1" (parameters () |> List.sumBy (fun p -> p.abs().sum().to_type(torch.ScalarType.Float64).item<float> ()))
    put o "train_loss" ((List.last reports).TrainLoss)
    put o "rows" (rows)
    put o "batch" cfg.BatchSize
    put o "warmup_steps" warmupSteps
    emit (facts o dt)

/// Trains the convolutional VAE for `epochs` epochs on `rows` images, then its test −ELBO (one sample, seed 0).
let convRun threads data rows epochs =
    let dt = setup threads
    use x = train data rows
    let test, _ = Mnist.load data Mnist.Test
    use test = test
    use vae = new Vae.VariationalAutoencoder(convConfig)
    let progress (r: Training.EpochReport) =
        log $"ours conv VAE epoch {r.Epoch}: train loss {r.TrainLoss:F4} ({r.Elapsed.TotalSeconds:F1} s)"
    let _, trainS = time (fun () -> vae.Fit(x, { Training.defaults with Epochs = epochs; Progress = progress }))
    let o = JsonObject()
    put o "epochs" epochs
    put o "train_s" trainS
    put o "test_neg_elbo" (-(vae.Elbo(test, 1, 0)))
    put o "rows" rows
    emit (facts o dt)

/// PCA with `k` components: a warm-up fit on 2000 rows, then the timed fit on all rows.
let pca threads data rows (k: int) =
    let dt = setup threads
    use x = train data rows
    use small = x.narrow(0L, 0L, 2000L)
    Pca.fit small k |> ignore
    let fit, seconds = time (fun () -> Pca.fit x k)
    let o = JsonObject()
    put o "seconds" (seconds)
    put o "evr" (arr fit.ExplainedVarianceRatio)
    put o "rows" (rows)
    emit (facts o dt)

/// Trains the VAE for `epochs` epochs reading RSS after each, then the test −ELBO and the timed
/// importance-weighted log-likelihood with `iwSamples` samples on the first `iwRows` test images.
let vaeRun threads data rows epochs (iwSamples: int) (iwRows: int) =
    let dt = setup threads
    use x = train data rows
    let test, _ = Mnist.load data Mnist.Test
    use test = test
    let self = string Environment.ProcessId
    let before, _ = procStatus self
    let rss = ResizeArray<float>()
    let managed = ResizeArray<float>()
    use vae = new Vae.VariationalAutoencoder(vaeConfig)
    let progress (r: Training.EpochReport) =
        let now, _ = procStatus self
        rss.Add now
        managed.Add(float (GC.GetTotalMemory false) / 1048576.0)
        log $"ours VAE epoch {r.Epoch}: train loss {r.TrainLoss:F4} ({r.Elapsed.TotalSeconds:F1} s), RSS {now:F0} MiB"
    let _, trainS = time (fun () -> vae.Fit(x, { Training.defaults with Epochs = epochs; Progress = progress }))
    let _, hwmTrain = procStatus self
    let negElbo = -(vae.Elbo(test, 1, 0))
    use first = test.narrow(0L, 0L, int64 iwRows)
    let ll, iwS = time (fun () -> vae.LogLikelihood(first, iwSamples, 0))
    let _, hwm = procStatus self
    let o = JsonObject()
    put o "epochs" (epochs)
    put o "train_s" (trainS)
    put o "rss_before_mib" (before)
    put o "rss_mib" (arr rss)
    put o "managed_mib" (arr managed)
    put o "hwm_train_mib" (hwmTrain)
    put o "hwm_mib" (hwm)
    put o "test_neg_elbo" (negElbo)
    put o "iw_s" (iwS)
    put o "iw_neg_ll" (-ll)
    put o "iw_samples" (iwSamples)
    put o "iw_rows" (iwRows)
    emit (facts o dt)

/// Where the time of one VAE training step goes: the step of Vae.Fit taken apart (same model, the same
/// closed-form loss and gradient at β = 1, the same flat parameter buffer, Adam writing into the second
/// buffer), each phase timed over `steps` minibatches after 200 warm-up ones (the JIT's tiering done). Also times the input check that Fit runs once over the
/// whole training set.
let profile threads data rows (steps: int) =
    let dt = setup threads
    use x = train data rows
    let n = x.shape.[0]
    use vae = new Vae.VariationalAutoencoder(vaeConfig)
    let _, checkS = time (fun () -> vae.CheckData("data", x))
    use flat = new FlatParameters.FlatParameters(vae.Networks.Parameters)
    use adam = Optimisers.adam flat 1e-3 0.0
    use g = new torch.Generator(0UL)
    let mutable lossSum = 0.0
    let names = [| "select"; "zero_grad"; "forward+backward"; "item"; "step"; "accumulate" |]
    let acc = Array.zeroCreate<float> names.Length
    let sw = Stopwatch()
    let warmup = 200
    let mutable order = torch.randperm(n, generator = g)
    let mutable start = 0L
    let total = Stopwatch()
    for s in 0 .. warmup + steps - 1 do
        if s = warmup then total.Start()
        if start + 128L > n then
            order.Dispose()
            order <- torch.randperm(n, generator = g)
            start <- 0L
        use scope = torch.NewDisposeScope()
        let mark i = (if s >= warmup then acc.[i] <- acc.[i] + sw.Elapsed.TotalSeconds); sw.Restart()
        sw.Restart()
        let batch = x.index_select(0L, order.narrow(0L, start, 128L))
        mark 0
        adam.ZeroGrad()
        mark 1
        let loss = vae.LossAndGradients(g, batch) // the closed-form gradient, as Vae.Fit computes it
        mark 2
        let v = loss.item<float32> ()
        if not (Single.IsFinite v) then failwith "diverged"
        mark 3
        adam.Step() // into the other buffer, keeping the weights before it, as in Training.fit
        mark 4
        lossSum <- lossSum + float v * 128.0 // on the host, as Training.fit does
        mark 5
        start <- start + 128L
    total.Stop()
    order.Dispose()
    let o = JsonObject()
    let phases = JsonObject()
    for i in 0 .. names.Length - 1 do phases[names.[i]] <- acc.[i] / float steps * 1000.0
    put o "phases_ms" (phases)
    put o "step_ms" (total.Elapsed.TotalSeconds / float steps * 1000.0)
    put o "check_data_s" (checkS)
    put o "steps" (steps)
    emit (facts o dt)

/// Resident memory over `steps` VAE steps on random data: "backward" (forward, zero_grad, backward through
/// autograd only), "fit-step" (the whole step of Vae.Fit: closed-form gradient, flat double buffer,
/// Optimisers.adam) or "torch-adam"
/// (TorchSharp's torch.optim.Adam on the separate parameters, which the library does not use because of
/// the growth this shows). RSS is read every 100 steps.
let memory threads (variant: string) (steps: int) =
    let dt = setup threads
    let self = string Environment.ProcessId
    use x = torch.rand([| 6000L; 784L |])
    use vae = new Vae.VariationalAutoencoder(vaeConfig)
    let ps = vae.Networks.Parameters
    use g = new torch.Generator(0UL)
    let flat = if variant = "fit-step" then Some(new FlatParameters.FlatParameters(ps)) else None
    let ours = flat |> Option.map (fun f -> Optimisers.adam f 1e-3 0.0)
    let theirs = if variant = "torch-adam" then Some(torch.optim.Adam(ps, lr = 1e-3)) else None
    let rss = ResizeArray<float>([ fst (procStatus self) ])
    let clock = Stopwatch.StartNew()
    for s in 1 .. steps do
        use scope = torch.NewDisposeScope()
        let b = x.narrow(0L, int64 ((s * 128) % 5800), 128L)
        let autogradLoss () =
            let t = Estimators.sgvbB g 1 vae.Model b
            let loss = (t.Kl * 1.0 - t.Reconstruction).mean()
            loss.item<float32> () |> ignore
            loss
        match ours, theirs with
        | Some adam, _ ->
            adam.ZeroGrad()
            let loss = vae.LossAndGradients(g, b)
            loss.item<float32> () |> ignore
            adam.Step()
        | _, Some opt ->
            let loss = autogradLoss ()
            opt.zero_grad ()
            loss.backward ()
            opt.step () |> ignore
        | _ ->
            let loss = autogradLoss ()
            for p in ps do
                use grad = p.grad
                if not (isNull grad) then grad.zero_() |> ignore
            loss.backward ()
        if s % 100 = 0 then rss.Add(fst (procStatus self))
    let msPerStep = clock.Elapsed.TotalMilliseconds / float steps
    ours |> Option.iter (fun o -> o.Dispose())
    flat |> Option.iter (fun f -> (f :> IDisposable).Dispose())
    theirs |> Option.iter (fun o -> o.Dispose())
    let o = JsonObject()
    put o "variant" variant
    put o "ms_per_step" msPerStep
    put o "steps" steps
    put o "rss_mib" (arr rss)
    put o "gen0" (GC.CollectionCount 0)
    emit (facts o dt)

/// Where a conv VAE step's time goes: each layer of its encoder and decoder alone on a minibatch of 128
/// (the real activations of MNIST images flowing through), the forward pass without gradients and the
/// forward and backward pass (of the output's sum), the median milliseconds of `steps` after 3 warm-up ones.
let convProfile threads data (steps: int) =
    let dt = setup threads
    use x = train data 128
    use vae = new Vae.VariationalAutoencoder(convConfig)
    use g = new torch.Generator(0UL)
    use z = torch.randn([| 128L; 20L |], generator = g)
    let layers = JsonObject()
    let medianMs (f: unit -> unit) =
        for _ in 1 .. 3 do f ()
        median [ for _ in 1 .. steps -> snd (time f) * 1000.0 ]
    let profileNetwork (prefix: string) (net: torch.nn.Module) (input: Tensor) =
        let mutable h = input.detach ()
        // In training the images need no gradient, so neither does the encoder's first convolution's input; z does.
        let mutable needsGrad = prefix = "decoder"
        for struct (name, child) in net.named_children () do
            let m = child :?> torch.nn.Module<Tensor, Tensor>
            let inp = h
            let forward = medianMs (fun () -> use _ = torch.no_grad () in (m.forward inp).Dispose())
            let hasParameters = not (Seq.isEmpty (m.parameters ()))
            let o = JsonObject()
            put o "forward" forward
            // A layer with nothing to differentiate (the encoder's reshape of the images) has no backward pass.
            if needsGrad || hasParameters then
                use withGrad = inp.detach().requires_grad_(needsGrad)
                put o "forward_backward" (medianMs (fun () -> use out = m.forward withGrad in use s = out.sum () in s.backward ()))
            layers[$"{prefix}.{name}"] <- o
            h <- (use _ = torch.no_grad () in m.forward inp)
            if hasParameters then needsGrad <- true
    profileNetwork "encoder" vae.Networks.Encoder x
    profileNetwork "decoder" vae.Networks.Decoder z
    let o = JsonObject()
    put o "layers_ms" layers
    put o "steps" steps
    emit (facts o dt)

/// Where Pca.fit's time goes: the call itself (cold, then warm), its steps one by one (float32 mean,
/// centring and covariance product, float64 eigh), and an all-float64 computation for comparison, with
/// the largest explained-variance-ratio difference between the two.
let pcaProfile threads data rows (k: int) =
    let dt = setup threads
    use x = train data rows
    let n = x.shape.[0]
    let phases = JsonObject()
    let timed (name: string) f = let r, sec = time f in phases[name] <- JsonValue.Create sec; r
    timed "pca_fit_cold" (fun () -> Pca.fit x k) |> ignore
    let fit = timed "pca_fit_warm" (fun () -> Pca.fit x k)
    use scope = torch.NewDisposeScope()
    timed "check_data" (fun () -> Validate.rows "data" 2 x)
    let mean = timed "float32.mean" (fun () -> x.mean([| 0L |]))
    let centred = timed "float32.centre" (fun () -> x - mean)
    let cov = timed "float32.gram" (fun () -> centred.T.matmul(centred) / float (n - 1L))
    timed "float64.eigh" (fun () -> let struct (v, w) = torch.linalg.eigh(cov.to_type(torch.float64)) in v, w) |> ignore
    centred.Dispose(); cov.Dispose()
    use x64 = x.to_type(torch.float64)
    let fit64 = timed "all_float64.fit" (fun () -> Pca.fit x64 k)
    let maxDiff (a: float[]) (b: float[]) = Array.map2 (fun x y -> abs (x - y)) a b |> Array.max
    let o = JsonObject()
    put o "phases_s" phases
    put o "max_abs_evr_diff_vs_float64" (maxDiff fit.ExplainedVarianceRatio fit64.ExplainedVarianceRatio)
    put o "max_rel_variance_diff_vs_float64"
        (Array.map2 (fun a b -> abs (a - b) / b) fit.ExplainedVariance fit64.ExplainedVariance |> Array.max)
    put o "rows" rows
    emit (facts o dt)

/// Parses `--key value` pairs after the worker name and runs it.
let run (argv: string list) =
    let rec parse (m: Map<string, string>) = function
        | (k: string) :: v :: rest when k.StartsWith "--" -> parse (m.Add(k.Substring 2, v)) rest
        | [] -> m
        | other -> failwithf "worker: cannot parse %A" other
    match argv with
    | name :: rest ->
        let o = parse Map.empty rest
        let i k d = o.TryFind k |> Option.map int |> Option.defaultValue d
        let f k d = o.TryFind k |> Option.map (fun v -> Double.Parse(v, inv)) |> Option.defaultValue d
        let threads = i "threads" Environment.ProcessorCount
        let data = o.TryFind "data" |> Option.defaultValue "data/mnist"
        let rows = i "rows" 60000
        match name with
        | "sgemm" -> sgemm threads (i "n" 2048) (i "reps" 5)
        | "vae-epoch" -> epoch "vae" threads data rows (i "warmup-steps" 20) (f "weight-decay" 0.0)
        | "ae-epoch" -> epoch "ae" threads data rows (i "warmup-steps" 20) (f "weight-decay" 0.0)
        | "own-vae-epoch" -> epoch "own-vae" threads data rows (i "warmup-steps" 20) 0.0
        | "conv-epoch" -> epoch "conv-vae" threads data rows (i "warmup-steps" 20) 0.0
        | "iwae-epoch" -> epoch "iwae" threads data rows (i "warmup-steps" 20) 0.0
        | "conv-run" -> convRun threads data rows (i "epochs" 10)
        | "pca" -> pca threads data rows (i "components" 50)
        | "vae-run" -> vaeRun threads data rows (i "epochs" 10) (i "iw-samples" 5000) (i "iw-rows" 1000)
        | "profile" -> profile threads data rows (i "steps" 200)
        | "conv-profile" -> convProfile threads data (i "steps" 20)
        | "pca-profile" -> pcaProfile threads data rows (i "components" 50)
        | "memory" -> memory threads (o.TryFind "variant" |> Option.defaultValue "fit-step") (i "steps" 600)
        | other -> failwithf "unknown worker %s" other
        0
    | [] -> failwith "worker: name missing"

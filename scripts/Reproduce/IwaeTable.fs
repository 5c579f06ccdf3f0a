/// Burda et al.'s IWAE table (2016, Table 1, MNIST, one stochastic layer) at a budget this machine allows:
/// the 784-200-200-50 tanh model with a Bernoulli decoder, trained on dynamically binarised MNIST by Adam 1e-3 on
/// minibatches of 20 as a VAE (k = 1) and as an IWAE with k = 5 and k = 50, scored on the test set binarised
/// once: the importance-sampling NLL with 5000 samples ± its standard error, the weights' effective sample
/// size, the active units, and AIS for the VAE row. The same model trained by PyTorch at the same budget
/// (benchmarks/iwae_table.py, on the same binarised test set) stands beside each row. Every model and score is
/// cached under runs/iwae-table/, and training goes through Fit's run checkpoint, so the step resumes.
module Reproduce.IwaeTable

open System
open System.Diagnostics
open System.Globalization
open System.IO
open System.Text.Json.Nodes
open TorchSharp
open Research.Core
open Scripts

/// What the table costs.
type Budget =
    { /// Passes over the training images per model (Burda et al.: 3280).
      Epochs: int
      /// Importance samples per test image for the NLL (Burda et al.: 5000).
      EvalSamples: int
      /// The first test images scored.
      TestRows: int64
      /// The first test images of the AIS cross-check of the VAE row, and its chains per image.
      AisRows: int64
      AisChains: int }

/// The default: five passes and the first 2000 test images (scoring all 10000 with K = 5000 costs about seven
/// minutes a model here: 84 s for 2000 with the VAE; set TestRows = 10000 for the whole test set).
let full = { Epochs = 5; EvalSamples = 5000; TestRows = 2000L; AisRows = 100L; AisChains = 16 }

/// The smoke test of `--quick`.
let quick = { Epochs = 1; EvalSamples = 50; TestRows = 500L; AisRows = 5L; AisChains = 2 }

/// The k of the table's rows.
let ks = [ 1; 5; 50 ]

/// Burda et al. (2016), Table 1: test NLL (nats) after 3280 passes.
let published = Map.ofList [ 1, 86.76; 5, 85.54; 50, 84.78 ]

/// The binarisation seed of the test set (Burda et al. binarise it once and keep it).
let testSeed = 0

/// Burda et al.'s threshold on Var_x E_q[z_j|x] for an active unit.
let activeThreshold = 1e-2

/// The model of row k: 784-200-200-50, tanh, Bernoulli, PyTorch's initialisation; k = 1 is the ELBO estimated
/// with one sample (the IWAE bound at K = 1, as in Burda et al.), k > 1 the IWAE bound with K = k.
let config (k: int) : Vae.VaeConfig =
    { Vae.defaults 784 50 with
        HiddenSizes = [ 200; 200 ]; Activation = Mlp.Tanh; Objective = Vae.ImportanceWeighted; Samples = k }

let private inv = CultureInfo.InvariantCulture

/// One row's scores, ours or PyTorch's.
type Scores =
    { K: int
      SecondsPerEpoch: float
      /// Test NLL (nats), its standard error over images and the weights' mean effective sample size.
      Nll: float
      StandardError: float
      EffectiveSampleSize: float
      ActiveUnits: int }

/// AIS against IS on the same first test images of the VAE row.
type AisCheck = { Rows: int64; Chains: int; AisNll: float; AisSe: float; IsNll: float; IsSe: float; AisSeconds: float; IsSeconds: float }

let private readJson (file: string) = JsonNode.Parse(File.ReadAllText file).AsObject()
let private writeJson (file: string) (o: JsonObject) =
    AtomicFile.write file (fun s ->
        use w = new StreamWriter(s, Text.UTF8Encoding false, 4096, true)
        w.Write(o.ToJsonString()))
let private num (o: JsonObject) (key: string) = o.[key].GetValue<float>()

let private scoresOf (o: JsonObject) =
    { K = int (num o "samples"); SecondsPerEpoch = num o "seconds_per_epoch"; Nll = -(num o "log_likelihood")
      StandardError = num o "standard_error"; EffectiveSampleSize = num o "effective_sample_size"; ActiveUnits = int (num o "active_units") }

let private aisOf (o: JsonObject) =
    { Rows = int64 (num o "rows"); Chains = int (num o "chains"); AisNll = num o "ais_nll"; AisSe = num o "ais_se"
      IsNll = num o "is_nll"; IsSe = num o "is_se"; AisSeconds = num o "ais_s"; IsSeconds = num o "is_s" }

/// The cached result in `file`, or the one `compute` returns, written there first.
let private cachedJson (file: string) (compute: unit -> JsonObject) =
    if File.Exists file then readJson file
    else
        writeJson file (compute ())
        // Read back, so that a fresh result is seen exactly as a cached one (numbers as JSON numbers).
        readJson file

/// Trains (or resumes, or loads) our model of row k and scores it on `test` (binarised).
let ours (budget: Budget) (folder: string) (train: torch.Tensor) (test: torch.Tensor) (k: int) : Scores * AisCheck option =
    let name = $"k{k}-e{budget.Epochs}-n{train.shape.[0]}"
    let timeFile = Path.Combine(folder, name + ".seconds-per-epoch")
    let scoreFile = Path.Combine(folder, $"{name}-is{budget.EvalSamples}-t{test.shape.[0]}.json")
    let aisFile = Path.Combine(folder, $"{name}-ais{budget.AisChains}-t{budget.AisRows}.json")
    let needAis = k = 1 && budget.AisRows > 0L
    if File.Exists scoreFile && (not needAis || File.Exists aisFile) then
        scoresOf (readJson scoreFile), (if needAis then Some (aisOf (readJson aisFile)) else None)
    else
        use model =
            RunCache.vae folder name (fun () ->
                let m = new Vae.VariationalAutoencoder(config k)
                let progress (r: Training.EpochReport) =
                    Log.line $"  ours k = {k} epoch {r.Epoch}: train loss {r.TrainLoss:F2} ({r.Elapsed.TotalSeconds / float r.Epoch:F1} s/epoch)"
                let history =
                    m.Fit(train, { Training.defaults with
                                     Epochs = budget.Epochs; BatchSize = 20; LearningRate = 1e-3; DynamicBinarization = true
                                     Progress = progress; CheckpointPath = Some (Path.Combine(folder, name + ".checkpoint")) })
                File.WriteAllText(timeFile, ((List.last history).Elapsed.TotalSeconds / float budget.Epochs).ToString("R", inv))
                m)
        let secondsPerEpoch = if File.Exists timeFile then Double.Parse(File.ReadAllText timeFile, inv) else nan
        let o =
            cachedJson scoreFile (fun () ->
                Log.line $"  ours k = {k}: importance sampling with K = {budget.EvalSamples} on {test.shape.[0]} test images"
                let e = model.EstimateLogLikelihood(test, Vae.ImportanceSampling, budget.EvalSamples, 1)
                JsonObject(dict [ "samples", JsonValue.Create k :> JsonNode; "seconds_per_epoch", JsonValue.Create secondsPerEpoch
                                  "log_likelihood", JsonValue.Create e.Mean; "standard_error", JsonValue.Create e.StandardError
                                  "effective_sample_size", JsonValue.Create e.EffectiveSampleSize
                                  "active_units", JsonValue.Create(model.ActiveUnits(test, activeThreshold)) ]))
        let ais =
            if not needAis then None
            else
                let a =
                    cachedJson aisFile (fun () ->
                        use rows = test.narrow(0L, 0L, min budget.AisRows test.shape.[0])
                        Log.line $"  ours k = {k}: AIS with {budget.AisChains} chains on {rows.shape.[0]} test images"
                        let clock = Stopwatch.StartNew()
                        let a = model.EstimateLogLikelihood(rows, Vae.AnnealedImportanceSampling Ais.defaults, budget.AisChains, 2)
                        let aisS = clock.Elapsed.TotalSeconds
                        clock.Restart()
                        let i = model.EstimateLogLikelihood(rows, Vae.ImportanceSampling, budget.EvalSamples, 1)
                        JsonObject(dict [ "rows", JsonValue.Create rows.shape.[0] :> JsonNode; "chains", JsonValue.Create budget.AisChains
                                          "ais_nll", JsonValue.Create -a.Mean; "ais_se", JsonValue.Create a.StandardError
                                          "is_nll", JsonValue.Create -i.Mean; "is_se", JsonValue.Create i.StandardError
                                          "ais_s", JsonValue.Create aisS; "is_s", JsonValue.Create clock.Elapsed.TotalSeconds ]))
                Some (aisOf a)
        scoresOf o, ais

/// PyTorch's run of row k at the same budget (benchmarks/iwae_table.py with Debian's python3-torch on
/// OpenBLAS, as the bench runs it), scored on the same binarised test set `testFile`.
let pytorch (budget: Budget) (folder: string) (data: string) (rows: int64) (testFile: string) (testRows: int64) (k: int) : Scores =
    let file = Path.Combine(folder, $"pytorch-k{k}-e{budget.Epochs}-n{rows}-is{budget.EvalSamples}-t{testRows}.json")
    cachedJson file (fun () ->
        Peers.ensurePackages ()
        let blas = Peers.ensureOpenBlas (Path.GetFullPath(Path.Combine("data", "bench", "openblas")))
        let args = [ Path.Combine("benchmarks", "iwae_table.py"); "--data"; data; "--test"; testFile; "--threads"; string Environment.ProcessorCount
                     "--rows"; string rows; "--epochs"; string budget.Epochs; "--samples"; string k; "--eval-samples"; string budget.EvalSamples ]
        Log.line $"""  PyTorch k = {k}: {Peers.Python} {String.Join(" ", args)}"""
        let code, result = Peers.runForResult (fun l -> Log.line ("    " + l)) Environment.CurrentDirectory (Peers.env (Some blas) Environment.ProcessorCount) (TimeSpan.FromHours 6.0) Peers.Python args
        match code, result with
        | 0, Some r -> r
        | _ ->
            let missing = if result.IsNone then " and no result" else ""
            failwith $"benchmarks/iwae_table.py (k = {k}) failed with exit code {code}{missing}; its output is above.")
    |> scoresOf

/// One row of the table.
type Row = { Ours: Scores; PyTorch: Scores }

let private header = "k,epochs,nll,standard_error,effective_sample_size,active_units,seconds_per_epoch,pytorch_nll,pytorch_standard_error,pytorch_effective_sample_size,pytorch_active_units,pytorch_seconds_per_epoch,published_nll"

/// The claims the text checks, each with its verdict.
let claims (rows: Row list) =
    let byK f = rows |> List.sortBy (fun r -> r.Ours.K) |> List.map f
    let decreasing (xs: float list) = xs |> List.pairwise |> List.forall (fun (a, b) -> b < a)
    let verdict ok = if ok then "holds" else "does not hold"
    let list f = String.Join(", ", byK (fun r -> $"k = {r.Ours.K}: {f r}"))
    let oursNll, torchNll = byK (fun r -> r.Ours.Nll), byK (fun r -> r.PyTorch.Nll)
    let units = byK (fun r -> r.Ours.ActiveUnits)
    let f2 (x: float) = x.ToString("F2", inv)
    let moreUnits = List.last units > List.head units && List.pairwise units |> List.forall (fun (a, b) -> b >= a)
    let gap = rows |> List.map (fun r -> r.Ours.Nll - r.PyTorch.Nll) |> List.max
    [ $"NLL improves with k: {verdict (decreasing oursNll)} for ours ({list (fun r -> f2 r.Ours.Nll)}) and {verdict (decreasing torchNll)} for PyTorch ({list (fun r -> f2 r.PyTorch.Nll)})."
      $"The IWAE keeps more active units than the VAE: {verdict moreUnits} ({list (fun r -> string r.Ours.ActiveUnits)} of 50; PyTorch {list (fun r -> string r.PyTorch.ActiveUnits)})."
      $"At the same budget our test NLL is within 1.5 nats of PyTorch's or better: {verdict (gap <= 1.5)} (ours − PyTorch at most {gap:F2} nats)." ]

/// Writes `results`/iwae_table.csv and iwae_table.md (the table, the AIS cross-check and the claims).
let write (budget: Budget) (results: string) (trainRows: int64) (rows: Row list) (ais: AisCheck option) =
    Directory.CreateDirectory results |> ignore
    let csv = Path.Combine(results, "iwae_table.csv")
    let f (x: float) = x.ToString("R", inv)
    let line (r: Row) =
        String.Join(",", r.Ours.K, budget.Epochs, f r.Ours.Nll, f r.Ours.StandardError, f r.Ours.EffectiveSampleSize, r.Ours.ActiveUnits, f r.Ours.SecondsPerEpoch,
                    f r.PyTorch.Nll, f r.PyTorch.StandardError, f r.PyTorch.EffectiveSampleSize, r.PyTorch.ActiveUnits, f r.PyTorch.SecondsPerEpoch, f published.[r.Ours.K])
    File.WriteAllLines(csv, header :: List.map line rows)
    let signed (x: float) = (if x >= 0.0 then "+" else "−") + abs(x).ToString("F2", inv)
    let name k = if k = 1 then "VAE (k = 1)" else $"IWAE (k = {k})"
    let lines =
        [ for r in rows ->
            $"| {name r.Ours.K} | {r.Ours.Nll:F2} ± {r.Ours.StandardError:F2} | {r.Ours.EffectiveSampleSize:F0} | {r.Ours.ActiveUnits} | {r.PyTorch.Nll:F2} ± {r.PyTorch.StandardError:F2} | {r.PyTorch.ActiveUnits} | {signed (r.Ours.Nll - r.PyTorch.Nll)} | {r.Ours.SecondsPerEpoch:F1} | {r.PyTorch.SecondsPerEpoch:F1} | {published.[r.Ours.K]:F2} |" ]
    let aisText =
        match ais with
        | Some a ->
            $"AIS cross-check of the VAE row (`LikelihoodEstimator.AnnealedImportanceSampling`, {a.Chains} chains, the defaults of `Ais.defaults`) on the first {a.Rows} test images: NLL {a.AisNll:F2} ± {a.AisSe:F2}, against importance sampling with K = {budget.EvalSamples} on the same images {a.IsNll:F2} ± {a.IsSe:F2} ({a.AisSeconds:F0} s against {a.IsSeconds:F0} s)."
        | None -> ""
    let md = Path.Combine(results, "iwae_table.md")
    let text = $"""| model | test NLL, ours (K = {budget.EvalSamples}) | ESS | active units | test NLL, PyTorch | active units, PyTorch | ours − PyTorch | s/epoch, ours | s/epoch, PyTorch | published NLL (3280 passes) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
{String.Join("\n", lines)}

Each model was trained for {budget.Epochs} passes over {trainRows} training images ({float budget.Epochs / 3280.0 * 100.0:F2}%% of Burda et al.'s 3280), each
minibatch binarised afresh, and scored on the first {budget.TestRows} test images binarised once (seed {testSeed}); the NLL is
−log p(x) by importance sampling from q(z|x) ± its standard error over images, the ESS the importance weights' mean
(Σw)²/Σw² out of K, and an active unit one with Var_x E_q[z_j|x] > {activeThreshold}. PyTorch (Debian's python3-torch, `benchmarks/iwae_table.py`)
trains the same model the same way and scores it on the same binarised images. The seconds per epoch were measured in the same
run, one model at a time.

{aisText}

{String.Join("\n", claims rows |> List.map (fun c -> "- " + c))}
"""
    File.WriteAllText(md, text)
    [ csv; md ]

/// Trains and scores every row, ours and PyTorch's, and writes the table. `data` is the MNIST folder.
let run (budget: Budget) (cache: string) (results: string) (data: string) (train: torch.Tensor) (test: torch.Tensor) =
    let folder = Path.GetFullPath(Path.Combine(cache, "iwae-table"))
    Directory.CreateDirectory folder |> ignore
    use scored = test.narrow(0L, 0L, min budget.TestRows test.shape.[0])
    use binarised = Mnist.binarize scored testSeed
    let testFile = Path.Combine(folder, $"test-binarised-seed{testSeed}-t{binarised.shape.[0]}.npy")
    if not (File.Exists testFile) then Npy.write testFile binarised
    let rows =
        [ for i, k in List.indexed ks ->
            Log.fraction (2 * i) (2 * ks.Length)
            let mine, check = ours budget folder train binarised k
            Log.fraction (2 * i + 1) (2 * ks.Length)
            { Ours = mine; PyTorch = pytorch budget folder data train.shape.[0] testFile binarised.shape.[0] k }, check ]
    write budget results train.shape.[0] (List.map fst rows) (rows |> List.tryPick snd)

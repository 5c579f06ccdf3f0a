/// PCA model files: a fitted PCA (Pca.PcaFit) in a Checkpoint of kind "pca", so it shares the other
/// models' atomic writes, versioning and checksum. Every value is stored in its own dtype, so a loaded
/// fit equals the saved one bit for bit.
module Research.Core.PcaFile

open System
open System.IO
open TorchSharp
open Research.Core.Interop

/// The checkpoint kind of a PCA file.
[<Literal>]
let Kind = "pca"

let private checkPath (path: string) =
    if isNull path then nullArg "path"
    if String.IsNullOrWhiteSpace path then raise (ArgumentException("The path is empty.", "path"))

/// Saves a fit atomically (Checkpoint.save): options Features and ComponentCount; tensors Mean [P]
/// and Components [k,P] (float32), ExplainedVariance and ExplainedVarianceRatio [k] and TotalVariance
/// [1] (float64). Throws ArgumentException for a null fit or a null or empty path, before writing.
let save (path: string) (fit: Pca.PcaFit) : unit =
    checkPath path
    if isNull (box fit) then nullArg "fit"
    use explained = torch.tensor(fit.ExplainedVariance, dtype = torch.float64)
    use ratio = torch.tensor(fit.ExplainedVarianceRatio, dtype = torch.float64)
    use total = torch.tensor([| fit.TotalVariance |], dtype = torch.float64)
    Checkpoint.save path
        { Kind = Kind
          Options = [ "Features", ModelFile.ofInt (int fit.Mean.shape.[0]); "ComponentCount", ModelFile.ofInt (int fit.Components.shape.[0]) ]
          Tensors =
            [ "Mean", fit.Mean; "Components", fit.Components
              "ExplainedVariance", explained; "ExplainedVarianceRatio", ratio; "TotalVariance", total ] }

let private names = [ "Mean"; "Components"; "ExplainedVariance"; "ExplainedVarianceRatio"; "TotalVariance" ]

/// Loads a fit that save wrote, with its tensors on the CPU. Throws ArgumentException for a null or
/// empty path, FileNotFoundException for a missing file, and InvalidDataException for a file that is
/// not a PCA model (another kind, naming it), is truncated or damaged (checksum), or whose options,
/// tensor names, dtypes, shapes or values (non-finite, negative variance) do not make a PCA fit.
let load (path: string) : Pca.PcaFit =
    checkPath path
    let cp = Checkpoint.load path Kind torch.CPU
    let bad (what: string) : 'a = raise (InvalidDataException($"PCA file {path}: {what}"))
    let mutable kept = []
    try
        let features = ModelFile.int cp "Features"
        let k = ModelFile.int cp "ComponentCount"
        if features < 1 || k < 1 || k > features then
            bad $"the option ComponentCount = {k} with Features = {features} is not a PCA of 1 to Features components"
        let found = cp.Tensors |> List.map fst
        if List.sort found <> List.sort names then
            bad $"""the tensors are [{String.Join(", ", found)}]; expected [{String.Join(", ", names)}]"""
        let tensor (name: string) (dtype: torch.ScalarType) (shape: int64[]) =
            let t = cp.Tensors |> List.find (fst >> (=) name) |> snd
            if t.dtype <> dtype || t.shape <> shape then
                bad $"tensor {name} is {t.dtype} %A{t.shape}; expected {dtype} %A{shape}"
            use finite = torch.isfinite(t).all()
            if not (finite.item<bool> ()) then bad $"tensor {name} holds NaN or infinity"
            t
        let mean = tensor "Mean" torch.float32 [| int64 features |]
        let components = tensor "Components" torch.float32 [| int64 k; int64 features |]
        let explained = toDoubleArray (tensor "ExplainedVariance" torch.float64 [| int64 k |])
        let ratio = toDoubleArray (tensor "ExplainedVarianceRatio" torch.float64 [| int64 k |])
        let total = (toDoubleArray (tensor "TotalVariance" torch.float64 [| 1L |])).[0]
        if Array.exists (fun v -> v < 0.0) explained || Array.exists (fun v -> v < 0.0) ratio || total < 0.0 then
            bad "a variance is negative"
        kept <- [ mean; components ]
        { Mean = mean; Components = components; ExplainedVariance = explained; ExplainedVarianceRatio = ratio; TotalVariance = total }
    finally
        for _, t in cp.Tensors do
            if not (List.exists (fun (k: Tensor) -> obj.ReferenceEquals(k, t)) kept) then t.Dispose()

// PCA against a variational autoencoder on MNIST from F# Interactive, on Research.Core (the F# core) directly.
//
//   dotnet pack -c Release -o packages                       # once, at the repository root (see below)
//   dotnet fsi examples/FSharpVae/fsharp-vae.fsx             # 10,000 training images, 5 epochs (a minute or two)
//   dotnet fsi examples/FSharpVae/fsharp-vae.fsx --quick     # 2,000 images, 1 epoch (seconds)
//   dotnet fsi examples/FSharpVae/fsharp-vae.fsx --train 60000 --epochs 20 --latent 10 --data /path/to/mnist
//
// The pack puts the Research and Research.Core packages into packages/, which the nuget.config beside this
// script names as a package source; every build has its own version, and "*-*" takes the newest. TorchSharp
// and libtorch come as the package's dependencies; on systems whose libstdc++ is older than TorchSharp's
// (Debian 12) the library makes its native part loadable itself (docs/troubleshooting.md).
#r "nuget: Research.Core, *-*"

open System
open System.IO
open TorchSharp
open Research.Core

type Settings = { Train: int; Epochs: int; Latent: int; Data: string option }

let rec parse settings args =
    match args with
    | [] -> settings
    | "--quick" :: rest -> parse { settings with Train = 2000; Epochs = 1 } rest
    | "--train" :: n :: rest -> parse { settings with Train = int n } rest
    | "--epochs" :: n :: rest -> parse { settings with Epochs = int n } rest
    | "--latent" :: n :: rest -> parse { settings with Latent = int n } rest
    | "--data" :: dir :: rest -> parse { settings with Data = Some dir } rest
    | other :: _ -> failwith $"unknown argument '{other}'; expected --quick, --train N, --epochs N, --latent N, --data DIR"

let settings = parse { Train = 10000; Epochs = 5; Latent = 20; Data = None } (List.ofArray (fsi.CommandLineArgs.[1..]))

/// data/mnist in this script's folder or any folder above it (the repository's layout).
let findMnist () =
    let rec up (dir: DirectoryInfo) =
        if isNull dir then None
        else
            let candidate = Path.Combine(dir.FullName, "data", "mnist")
            if File.Exists(Path.Combine(candidate, "t10k-images-idx3-ubyte")) then Some candidate else up dir.Parent
    [ __SOURCE_DIRECTORY__; Environment.CurrentDirectory ] |> List.tryPick (DirectoryInfo >> up)

let data =
    match settings.Data |> Option.orElse (findMnist ()) with
    | Some d -> d
    | None -> failwith "MNIST not found: fetch it with `dotnet fsi build.fsx data` (it goes to data/mnist) or pass --data DIR."

// The library's native set-up (bit-reproducible MKL settings, a loadable libLibTorchSharp.so) before any tensor work.
Native.ensureLoaded ()
let libtorchCpu = Native.loadedLibraries () |> List.find (fun p -> Path.GetFileName p = "libtorch_cpu.so")
printfn $"libtorch {torch.__version__} from {Path.GetDirectoryName libtorchCpu}"

let clock = Diagnostics.Stopwatch.StartNew()
let trainAll, _ = Mnist.load data Mnist.Train
let test, _ = Mnist.load data Mnist.Test
let n = min settings.Train (int trainAll.shape.[0])
let train = trainAll.narrow(0L, 0L, int64 n) // the first n rows: a view, no copy
printfn $"PCA vs VAE on MNIST: {n} training images, {settings.Latent} latent dimensions, {settings.Epochs} epoch(s) of Adam"

let pca = Pca.fit train settings.Latent
let pcaMse = Pca.reconstructionError pca test
printfn $"  PCA explains %.1f{100.0 * Array.sum pca.ExplainedVarianceRatio}%% of the pixel variance"

let vae = new Vae.VariationalAutoencoder({ Vae.defaults Mnist.Pixels settings.Latent with Device = "cpu" })
let history =
    vae.Fit(train,
            { Training.defaults with
                Epochs = settings.Epochs
                Progress = fun r -> printfn $"  VAE epoch {r.Epoch}: -ELBO %.1f{r.TrainLoss} nats per image (%.1f{r.Elapsed.TotalSeconds} s)" })

let vaeMse =
    use reconstruction = vae.Reconstruct test
    use mse = torch.nn.functional.mse_loss(reconstruction, test)
    mse.item<float32> () |> float
let elbo = vae.Elbo(test, 1, 0)

// The estimators by hand, on the first 100 test images: SGVB estimator B (closed-form KL, L = 1) and the
// importance-weighted bound with K = 50 samples, which lies above the ELBO and below log p(x).
let few = test.narrow(0L, 0L, 100L)
let byHand =
    use _ = torch.no_grad ()
    use generator = new torch.Generator(7UL)
    let terms = Estimators.sgvbB generator 1 vae.Model few
    let elboFew = (Estimators.elbo terms).mean().item<float32> ()
    let kl = terms.Kl.mean().item<float32> ()
    let iw = (Estimators.importanceWeighted generator 50 10 vae.Model few).mean().item<float32> ()
    elboFew, kl, iw

printfn ""
printfn "%-18s %18s %17s" "model" "test MSE per pixel" "test ELBO (nats)"
printfn "%-18s %18.5f %17s" $"PCA, {settings.Latent} comps" pcaMse "-"
printfn "%-18s %18.5f %17.1f" $"VAE, N_z = {settings.Latent}" vaeMse elbo
let elboFew, kl, iw = byHand
printfn $"On 100 test images: ELBO %.1f{elboFew} (KL term %.1f{kl}) <= importance-weighted bound, K = 50: %.1f{iw} nats"
printfn $"done in %.1f{clock.Elapsed.TotalSeconds} s ({history.Length} VAE epochs)"
(vae :> IDisposable).Dispose()

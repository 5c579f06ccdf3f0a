/// Run checkpoints within an epoch (TrainingConfig.CheckpointEveryBatches): a run stopped after any minibatch and
/// resumed from the last checkpoint it wrote ends bit-identical to the straight run (weights and history), also when
/// that checkpoint lies inside an epoch; a damaged position is refused.
module Research.Core.Tests.ResumeWithinEpochTests

open System
open System.IO
open System.Threading
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Research.Core

/// 400 rows in minibatches of 25: 16 steps an epoch, 3 epochs.
let private rows, batch, epochs = 400L, 25, 3
let private stepsPerEpoch = int rows / batch

/// Wake-sleep through Networks.Fit (the trainer every model uses), Adagrad with weight decay and dynamic
/// binarisation, so each step draws from the generator; `stopAfter` cancels the run after that many steps
/// of this call. Returns the history and the weights' bytes.
let private run (every: int option) (path: string option) (stopAfter: int option) =
    use g = new torch.Generator(5UL)
    use x = torch.rand([| rows; 12L |], generator = g)
    use vae = new Vae.VariationalAutoencoder({ Vae.defaults 12 2 with HiddenSizes = [ 10 ]; Seed = 4; Device = "cpu" })
    use stop = new CancellationTokenSource()
    let steps = ref 0
    let loss generator (b: torch.Tensor) =
        steps.Value <- steps.Value + 1
        if Some steps.Value = stopAfter then stop.Cancel()
        WakeSleep.wakeLoss generator vae.Model b + WakeSleep.sleepLoss generator vae b.shape.[0]
    let config =
        { Training.defaults with
            Epochs = epochs; BatchSize = batch; Optimizer = Training.Adagrad; LearningRate = 0.05; WeightDecay = 1e-3
            DynamicBinarization = true; CheckpointPath = path; CheckpointEveryBatches = every; Cancellation = stop.Token }
    let history = vae.Networks.Fit(x, config, Training.byAutograd loss, (fun v -> -(vae.Elbo(v, 1, 0))), vae.Terms, vae.SavedOptions)
    let weights = [| for _, p in vae.Networks.NamedParameters do yield! p.data<float32>().ToArray() |] |> Array.collect BitConverter.GetBytes
    [ for r in history -> r.Epoch, r.TrainLoss, r.ExamplesSeen ], weights

let private withFile f =
    let dir = Directory.CreateTempSubdirectory("research-within-")
    try f (Path.Combine(dir.FullName, "run.checkpoint")) finally dir.Delete(true)

/// The position within an epoch the file holds, None for a finished epoch or when no file was written yet.
let private position (path: string) =
    if not (File.Exists path) then None
    else
        let cp = Checkpoint.load path Training.RunKind torch.CPU
        try cp.Options |> List.tryFind (fst >> (=) "run.position") |> Option.map snd
        finally for _, t in cp.Tensors do t.Dispose()

let tests =
    let straight = lazy (run None None None)
    testList "ResumeWithinEpoch" [
        testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = 30 } "stopped after any step and resumed, the run ends bit-identical to the straight one"
            (Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (1, epochs * stepsPerEpoch - 1)) (Gen.choose (1, 5)))) (fun (stopAfter, every) ->
                withFile (fun path ->
                    let history, _ = run (Some every) (Some path) (Some stopAfter)
                    Expect.equal history.Length (stopAfter / stepsPerEpoch) "the stopped run returns its finished epochs"
                    let inEpoch = stopAfter % stepsPerEpoch
                    // The last write was inside the epoch exactly when a multiple of `every` steps of it were done.
                    Expect.equal (position path |> Option.isSome) (inEpoch >= every) "a checkpoint within the epoch was written when one was due"
                    let resumed = run None (Some path) None
                    Expect.equal (fst resumed) (fst straight.Value) "the same history"
                    Expect.isTrue (snd resumed = snd straight.Value) "bit-identical weights")))

        test "checkpoints within epochs leave an uninterrupted run as it was" {
            withFile (fun path ->
                let every = run (Some 3) (Some path) None
                Expect.equal (fst every) (fst straight.Value) "the same history"
                Expect.isTrue (snd every = snd straight.Value) "bit-identical weights"
                Expect.isNone (position path) "the file left at the end holds a finished epoch")
        }

        test "a damaged position within the epoch is InvalidDataException, and nothing is trained" {
            withFile (fun path ->
                run (Some 4) (Some path) (Some 6) |> ignore
                let cp = Checkpoint.load path Training.RunKind torch.CPU
                try
                    let damaged = cp.Options |> List.map (fun (k, v) -> if k = "run.position" then k, "4,x,100,1.5,0" else k, v)
                    Checkpoint.save path { cp with Options = damaged }
                finally for _, t in cp.Tensors do t.Dispose()
                Expect.throwsT<InvalidDataException> (fun () -> run None (Some path) None |> ignore) "a damaged position")
        }

        test "CheckpointEveryBatches needs CheckpointPath and a positive count" {
            let config = { Training.defaults with CheckpointEveryBatches = Some 5 }
            Expect.throwsT<ArgumentException> (fun () -> Training.validate config) "without CheckpointPath"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> Training.validate { config with CheckpointPath = Some "x"; CheckpointEveryBatches = Some 0 }) "zero"
        }
    ]

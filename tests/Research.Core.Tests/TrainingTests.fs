module Research.Core.Tests.TrainingTests

open System
open System.Threading
open Expecto
open TorchSharp
open Research.Core

/// A 1-parameter model whose loss is (w − 3)² until call `nanAt`, where it turns NaN.
type private Quadratic(nanAt: int) =
    let w = new Modules.Parameter(torch.zeros(1L))
    let mutable calls = 0
    member val Seen = ResizeArray<float32>()
    member _.W = w
    interface Training.ITrainable with
        member _.Parameters = [ w ]
        member this.LossAndGradients generator batch =
            let loss _ (batch: torch.Tensor) =
                calls <- calls + 1
                this.Seen.Add(w.item<float32> ())
                let l = (w - 3.0f).square().sum() + batch.sum() * 0.0f
                if calls = nanAt then l * Single.NaN else l
            Training.byAutograd loss generator batch
        member _.Evaluate _ = 0.0

let private binaryData seed n p =
    use g = new torch.Generator(uint64 seed)
    torch.rand([| int64 n; int64 p |], generator = g).gt((0.5f).ToScalar()).to_type(torch.ScalarType.Float32)

let private smallVae seed =
    new Vae.VariationalAutoencoder({ Vae.defaults 16 2 with HiddenSizes = [ 8 ]; Seed = seed; Device = "cpu" })

let private weights (net: Networks.EncoderDecoder) =
    net.NamedParameters |> List.map (fun (_, p) -> Interop.toArray (p.flatten()))

/// Runs f, expecting an exception of type 'E, and returns it.
let private catch<'E when 'E :> exn> (f: unit -> unit) : 'E =
    try
        f ()
        failtestf "expected %s, but nothing was thrown" typeof<'E>.Name
    with :? 'E as e -> e

let tests =
    testList "Training" [
        test "a NaN loss stops with the epoch and batch named, and the last finite-loss weights kept" {
            let m = Quadratic(nanAt = 5)
            use data = torch.zeros(10L, 1L)
            let ex =
                catch<Training.DivergedException> (fun () ->
                    Training.fit m data { Training.defaults with BatchSize = 2; LearningRate = 0.1 } |> ignore)
            Expect.stringContains ex.Message "epoch 1, batch 5" "message names where"
            Expect.equal (m.W.item<float32> ()) m.Seen.[3] "weights are those that gave the last finite loss"
        }
        test "a learning rate of 1e6 diverges with a clear error and finite weights" {
            use data = binaryData 1 256 16
            use vae = smallVae 1
            let ex = catch<Training.DivergedException> (fun () ->
                vae.Fit(data, { Training.defaults with LearningRate = 1e6; Epochs = 5; BatchSize = 32 }) |> ignore)
            Expect.stringContains ex.Message "diverged" "message"
            for w in weights vae.Networks do
                Expect.isTrue (w |> Array.forall Single.IsFinite) "weights stay finite"
            Expect.isTrue (Double.IsFinite(vae.Elbo(data, 1, 0))) "the model still scores"
        }
        test "the same seed gives the same history and weights" {
            use data = binaryData 2 300 16
            let run () =
                use vae = smallVae 7
                let h = vae.Fit(data, { Training.defaults with Epochs = 3; BatchSize = 64; Seed = 11 })
                h |> List.map (fun r -> r.TrainLoss), weights vae.Networks
            let h1, w1 = run ()
            let h2, w2 = run ()
            Expect.equal h1 h2 "histories are bit-identical"
            Expect.equal w1 w2 "weights are bit-identical"
        }
        test "a batch larger than the data and a ragged last batch both train every example" {
            use data = binaryData 3 100 16
            use vae = smallVae 3
            let h = vae.Fit(data, { Training.defaults with Epochs = 2; BatchSize = 1000 })
            Expect.equal (h |> List.map (fun r -> r.ExamplesSeen)) [ 100L; 200L ] "full batches"
            let h = vae.Fit(data, { Training.defaults with Epochs = 2; BatchSize = 30 })
            Expect.equal (h |> List.map (fun r -> r.ExamplesSeen)) [ 100L; 200L ] "30+30+30+10"
        }
        test "cancellation between batches returns the finished epochs and a usable model" {
            use data = binaryData 4 200 16
            use vae = smallVae 4
            use cts = new CancellationTokenSource()
            let config =
                { Training.defaults with
                    Epochs = 10; BatchSize = 20; Cancellation = cts.Token
                    Progress = fun r -> if r.Epoch = 2 then cts.Cancel() }
            let h = vae.Fit(data, config)
            Expect.equal (h |> List.map (fun r -> r.Epoch)) [ 1; 2 ] "two finished epochs"
            Expect.isTrue (Double.IsFinite(vae.Elbo(data, 1, 0))) "still usable"
        }
        test "a second concurrent Fit on the same model is refused" {
            use data = binaryData 5 100 16
            use vae = smallVae 5
            use inside = new ManualResetEventSlim(false)
            use release = new ManualResetEventSlim(false)
            let first =
                Tasks.Task.Run(fun () ->
                    vae.Fit(data, { Training.defaults with Epochs = 2; Progress = fun _ -> inside.Set(); release.Wait() }) |> ignore)
            inside.Wait()
            Expect.throwsT<InvalidOperationException> (fun () -> vae.Fit(data, Training.defaults) |> ignore) "refused"
            release.Set()
            first.Wait()
        }
        test "validation loss is reported each epoch and the training loss falls" {
            use data = binaryData 6 512 16
            use valid = binaryData 7 128 16
            use vae = smallVae 6
            let h = vae.Fit(data, { Training.defaults with Epochs = 8; BatchSize = 64; LearningRate = 1e-2; Validation = Some valid })
            Expect.isTrue (h |> List.forall (fun r -> r.ValidationLoss.IsSome)) "every epoch scored"
            Expect.isLessThan (List.last h).TrainLoss h.Head.TrainLoss "the loss falls"
        }
    ]

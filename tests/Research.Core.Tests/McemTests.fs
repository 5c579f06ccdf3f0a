module Research.Core.Tests.McemTests

open System
open Expecto
open TorchSharp
open Research.Core

let private vae seed = new Vae.VariationalAutoencoder({ Vae.defaults 20 2 with HiddenSizes = [ 16 ]; Seed = seed; Device = "cpu" })

let private copies (ps: (string * torch.Tensor) list) = [ for n, p in ps -> n, p.detach().clone() ]

let private unchanged (before: (string * torch.Tensor) list) (after: (string * torch.Tensor) list) =
    List.forall2 (fun (_, a: torch.Tensor) (_, b: torch.Tensor) -> not (a.ne(b).any().item<bool> ())) before after

/// The encoder's and the decoder's parameters, apart.
let private halves (m: Vae.VariationalAutoencoder) =
    m.Networks.NamedParameters |> List.partition (fun (n, _) -> n.StartsWith "encoder.")

let tests =
    testList "Mcem" [
        test "the M-step's loss −log p(x, z) sends a gradient to the decoder only" {
            use data = WakeSleepTests.binary 1 32 20
            use m = vae 1
            use z = torch.randn([| 1L; 32L; 2L |])
            (Mcem.jointLoss m.Model z data).backward ()
            for name, p in m.Networks.NamedParameters do
                let hit = not (isNull p.grad) && p.grad.abs().sum().item<float32> () > 0.0f
                Expect.equal hit (name.StartsWith "decoder.") $"{name} gets a gradient exactly when it is the decoder's"
        }

        test "MCEM raises the importance-weighted log p(x) of a small model in a few epochs and leaves the encoder unchanged" {
            use data = WakeSleepTests.binary 2 512 20
            use m = vae 2
            // The untrained encoder is close to the prior; in 2 dimensions K = 500 samples of it estimate log p(x) well.
            let before = m.LogLikelihood(data, 500, 0)
            let encoder, decoder = halves m
            let encoderBefore, decoderBefore = copies encoder, copies decoder
            let reports = Mcem.fit Mcem.defaults m data { Training.defaults with Epochs = 8; BatchSize = 64; LearningRate = 1e-2 }
            let after = m.LogLikelihood(data, 500, 0)
            Expect.isGreaterThan after (before + 1.0) $"log p(x) {before:F2} → {after:F2} nats"
            Expect.equal reports.Length 8 "one report per epoch"
            Expect.isLessThan (List.last reports).TrainLoss reports.Head.TrainLoss "−log p(x, z) at the samples falls"
            Expect.isTrue (unchanged encoderBefore (fst (halves m))) "the encoder is not trained"
            Expect.isFalse (unchanged decoderBefore (snd (halves m))) "the decoder is"
        }

        test "the validation loss is −log p(x) by the Appendix D estimator, with the training seed" {
            use data = WakeSleepTests.binary 3 64 20
            use validation = WakeSleepTests.binary 4 10 20
            use m = vae 3
            let evaluation = { MarginalLikelihood.defaults with WarmUp = 10; Transitions = 5; Chains = 4 }
            let config = { Mcem.defaults with Evaluation = evaluation }
            let reports = Mcem.fit config m data { Training.defaults with Epochs = 1; BatchSize = 32; Seed = 7; Validation = Some validation }
            use g = new torch.Generator(7UL)
            let e = MarginalLikelihood.estimate g evaluation 2 m.Model validation
            let expected = -(e.LogMarginal.mean().item<float> ())
            Expect.floatClose Accuracy.single reports.Head.ValidationLoss.Value expected "−(mean Appendix D estimate)"
        }

        test "bad settings are ArgumentExceptions before any weight changes" {
            use data = WakeSleepTests.binary 5 32 20
            use m = vae 5
            let before = copies m.Networks.NamedParameters
            let refuses (config: Mcem.Config) (training: Training.TrainingConfig) what =
                let thrown = try Mcem.fit config m data training |> ignore; None with :? ArgumentException as e -> Some e
                Expect.isSome thrown $"{what}: an ArgumentException"
            let t = { Training.defaults with Epochs = 1 }
            refuses { Mcem.defaults with WeightUpdates = 0 } t "WeightUpdates ≥ 1"
            refuses { Mcem.defaults with Transitions = 0 } t "Transitions ≥ 1"
            refuses { Mcem.defaults with LeapfrogSteps = 0 } t "LeapfrogSteps ≥ 1"
            refuses { Mcem.defaults with InitialStepSize = -0.1 } t "a positive step size"
            refuses { Mcem.defaults with Evaluation = { MarginalLikelihood.defaults with Chains = 0 } } { t with Validation = Some data } "Evaluation.Chains ≥ 1"
            refuses Mcem.defaults { t with Epochs = 0 } "Epochs ≥ 1"
            refuses Mcem.defaults { t with BatchSize = 0 } "BatchSize ≥ 1"
            refuses Mcem.defaults { t with CheckpointPath = Some "mcem.run" } "no run checkpoints"
            use wide = torch.zeros(4L, 21L)
            let thrown = try Mcem.fit Mcem.defaults m wide t |> ignore; None with :? ArgumentException as e -> Some e
            Expect.isSome thrown "data of the wrong width"
            Expect.isTrue (unchanged before m.Networks.NamedParameters) "no weight changed"
        }
    ]

module Research.Core.Tests.WakeSleepTests

open Expecto
open TorchSharp
open Research.Core

/// Binary data [n,p]: two random prototypes with 10% of pixels flipped (shared with McemTests).
let binary seed n p =
    use g = new torch.Generator(uint64 seed)
    // Two prototypes with flipped pixels: structure a latent variable can capture.
    use proto = torch.rand([| 2L; int64 p |], generator = g).gt((0.5f).ToScalar())
    use pick = torch.randint(2L, [| int64 n |], generator = g)
    use flips = torch.rand([| int64 n; int64 p |], generator = g).lt((0.1f).ToScalar())
    torch.logical_xor(proto.index_select(0L, pick), flips).to_type(torch.ScalarType.Float32)

let private vae seed = new Vae.VariationalAutoencoder({ Vae.defaults 20 2 with HiddenSizes = [ 16 ]; Seed = seed; Device = "cpu" })

/// True where the parameter received a non-zero gradient.
let private touched (ps: (string * torch.Tensor) list) =
    ps |> List.map (fun (n, p) -> n, (not (isNull p.grad)) && p.grad.abs().sum().item<float32> () > 0.0f)

let tests =
    testList "WakeSleep" [
        test "the wake phase trains only the decoder and the sleep phase only the encoder" {
            use data = binary 1 64 20
            use m = vae 1
            use g = new torch.Generator(3UL)
            let parameters = m.Networks.NamedParameters
            let check (loss: torch.Tensor) expectEncoder =
                for _, p in parameters do (p.grad |> Option.ofObj |> Option.iter (fun t -> t.zero_() |> ignore))
                loss.backward ()
                for name, hit in touched parameters do
                    let isEncoder = name.StartsWith "encoder."
                    Expect.equal hit (isEncoder = expectEncoder) $"{name} gets a gradient exactly when its phase trains it"
            check (WakeSleep.wakeLoss g m.Model data) false
            check (WakeSleep.sleepLoss g m 64L) true
        }
        test "wake-sleep raises the ELBO of a model" {
            use data = binary 2 512 20
            use m = vae 2
            let before = m.Elbo(data, 10, 0)
            WakeSleep.fit m data { Training.defaults with Epochs = 30; BatchSize = 64; LearningRate = 1e-2 } |> ignore
            let after = m.Elbo(data, 10, 0)
            Expect.isGreaterThan after (before + 1.0) $"ELBO {before:F2} → {after:F2} nats"
        }
    ]

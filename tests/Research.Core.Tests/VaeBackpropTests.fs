/// The closed-form gradient of the VAE's training loss against libtorch's autograd on the same loss.
module Research.Core.Tests.VaeBackpropTests

open System
open Expecto
open FsCheck.FSharp
open TorchSharp
open Research.Core

type Tensor = torch.Tensor

/// A random architecture and objective: sizes, activation, decoder, L, β, rows and seeds.
type private Case =
    { Input: int; Latent: int; Hidden: int list; Activation: Mlp.Activation; Likelihood: Vae.Likelihood
      Samples: int; Beta: float; Rows: int; Seed: int }

let private cases =
    gen {
        let! input = Gen.choose (2, 12)
        let! latent = Gen.choose (1, min 4 input)
        let! depth = Gen.choose (0, 2)
        let! hidden = Gen.listOfLength depth (Gen.choose (1, 10))
        let! activation = Gen.elements [ Mlp.ReLU; Mlp.Tanh ]
        let! likelihood = Gen.elements [ Vae.Bernoulli; Vae.Gaussian ]
        let! samples = Gen.choose (1, 3)
        let! beta = Gen.choose (0, 200) |> Gen.map (fun b -> float b / 100.0)
        let! rows = Gen.choose (1, 9)
        let! seed = Gen.choose (0, 100000)
        return { Input = input; Latent = latent; Hidden = hidden; Activation = activation; Likelihood = likelihood
                 Samples = samples; Beta = beta; Rows = rows; Seed = seed }
    }

/// Every parameter's gradient, flattened and joined (float64).
let private gradients (ps: Modules.Parameter list) =
    torch.cat([| for p in ps -> (use g = p.grad in g.flatten().clone ()) |])

/// The loss of one step by both routes, the largest difference between their gradients and the largest
/// gradient, in float64 so that only rounding of order 1e-16 can separate them.
let private bothRoutes (c: Case) =
    let config =
        { Vae.defaults c.Input c.Latent with
            HiddenSizes = c.Hidden; Activation = c.Activation; Likelihood = c.Likelihood; Samples = c.Samples
            Beta = c.Beta; Seed = c.Seed; Device = "cpu" }
    use vae = new Vae.VariationalAutoencoder(config)
    let net = vae.Networks
    net.Encoder.``to``(torch.float64) |> ignore
    net.Decoder.``to``(torch.float64) |> ignore
    let ps = net.Parameters
    use g = new torch.Generator(uint64 c.Seed + 1UL)
    use x = torch.rand([| int64 c.Rows; int64 c.Input |], dtype = torch.float64, generator = g)
    let clear () =
        for p in ps do
            use old = p.grad
            if not (isNull old) then old.zero_() |> ignore
    // Autograd through the loss Vae.Fit trains on: (β·KL − E_q log p(x|z)).mean() with SGVB B.
    clear ()
    use ga = new torch.Generator(uint64 c.Seed + 2UL)
    let t = Estimators.sgvbB ga c.Samples vae.Model x
    use lossA = (t.Kl * c.Beta - t.Reconstruction).mean()
    lossA.backward ()
    use gradA = gradients ps
    clear ()
    use gb = new torch.Generator(uint64 c.Seed + 2UL)
    let observation = match c.Likelihood with Vae.Bernoulli -> VaeBackprop.BernoulliLogits | Vae.Gaussian -> VaeBackprop.GaussianMeanLogVar
    use lossB = VaeBackprop.lossAndGradients net.Encoder net.Decoder c.Activation observation c.Samples c.Beta gb x
    use gradB = gradients ps
    use diff = (gradA - gradB).abs().max()
    use scale = gradA.abs().max()
    lossA.item<float> (), lossB.item<float> (), diff.item<float> (), scale.item<float> ()

let tests =
    testList "VaeBackprop" [
        testPropertyWithConfig (Accuracy.properties 60)
            "the closed-form gradient of the SGVB-B loss equals autograd's for random MLPs, activations, decoders, L and β"
            (Prop.forAll (Arb.fromGen cases) (fun c ->
                let lossA, lossB, diff, scale = bothRoutes c
                Expect.floatClose Accuracy.double lossB lossA $"the loss, %A{c}"
                Expect.isLessThan diff (Accuracy.double.absolute * (1.0 + scale)) $"largest gradient difference, %A{c}"
                Expect.isGreaterThan scale 0.0 "the gradient is not trivially zero"))
        test "networks of another shape than Mlp.create's (another activation, a trailing nonlinearity) are refused when the step is made" {
            use vae = new Vae.VariationalAutoencoder({ Vae.defaults 8 2 with HiddenSizes = [ 5 ]; Activation = Mlp.Tanh; Device = "cpu" })
            let net = vae.Networks
            Expect.throwsT<ArgumentException>
                (fun () -> VaeBackprop.lossAndGradients net.Encoder net.Decoder Mlp.ReLU VaeBackprop.BernoulliLogits 1 1.0 |> ignore)
                "tanh networks with the ReLU gradient"
            use odd = Mlp.create [ 8; 5; 4 ] (Some Mlp.ReLU)
            odd.append("relu9", torch.nn.ReLU()) |> ignore
            Expect.throwsT<ArgumentException> (fun () -> VaeBackprop.affineLayers Mlp.ReLU odd |> ignore) "a nonlinearity after the last layer"
            Expect.equal (VaeBackprop.affineLayers Mlp.Tanh net.Encoder |> List.length) 2 "the VAE's own encoder: two affine layers"
        }
        test "a VAE's own step (float32, 784-400-20) agrees with autograd to float32 rounding, and a second call replaces the gradients" {
            let config = { Vae.defaults 784 20 with Device = "cpu" }
            use vae = new Vae.VariationalAutoencoder(config)
            let net = vae.Networks
            use g = new torch.Generator(5UL)
            use x = torch.rand([| 64L; 784L |], generator = g)
            use g1 = new torch.Generator(6UL)
            let once () =
                use g1 = new torch.Generator(6UL)
                use loss = vae.LossAndGradients(g1, x) // the step Fit takes
                gradients net.Parameters
            use first = once ()
            use second = once ()
            Expect.isTrue (first.allclose(second, 0.0, 0.0)) "the gradients are written, not accumulated"
            for p in net.Parameters do
                use old = p.grad
                old.zero_() |> ignore
            let t = Estimators.sgvbB g1 1 vae.Model x
            use loss = (t.Kl * 1.0 - t.Reconstruction).mean()
            loss.backward ()
            use viaAutograd = gradients net.Parameters
            use diff = (first - viaAutograd).abs().max()
            use scale = viaAutograd.abs().max()
            Expect.isLessThan (diff.item<float32> ()) (1e-4f * scale.item<float32> ()) "float32 rounding apart"
        }
    ]

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

/// Every parameter's value, flattened and joined.
let private weights (ps: Modules.Parameter list) =
    torch.cat([| for p in ps -> (use v = p.detach() in v.flatten().clone ()) |])

/// The loss of one step by both routes — autograd on `reference` (a loss of the VAE's Model, as Vae.Fit trains
/// on) and `closedForm` (VaeBackprop on the networks) — the largest difference between their gradients and the
/// largest gradient, in float64 so that only rounding of order 1e-16 can separate them.
let private bothRoutesOf (c: Case) (reference: Estimators.LatentVariableModel -> torch.Generator -> Tensor -> Tensor)
                         (closedForm: torch.nn.Module -> torch.nn.Module -> VaeBackprop.Observation -> torch.Generator -> Tensor -> Tensor) =
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
    clear ()
    use ga = new torch.Generator(uint64 c.Seed + 2UL)
    use lossA = Training.byAutograd (reference vae.Model) ga x
    use gradA = gradients ps
    clear ()
    use gb = new torch.Generator(uint64 c.Seed + 2UL)
    let observation = match c.Likelihood with Vae.Bernoulli -> VaeBackprop.BernoulliLogits | Vae.Gaussian -> VaeBackprop.GaussianMeanLogVar
    use lossB = closedForm net.Encoder net.Decoder observation gb x
    use gradB = gradients ps
    use diff = (gradA - gradB).abs().max()
    use scale = gradA.abs().max()
    lossA.item<float> (), lossB.item<float> (), diff.item<float> (), scale.item<float> ()

/// Both routes on the loss Vae.Fit trains on for the ELBO: (β·KL − E_q log p(x|z)).mean() with SGVB B.
let private bothRoutes (c: Case) =
    bothRoutesOf c
        (fun model g x -> let t = Estimators.sgvbB g c.Samples model x in (t.Kl * c.Beta - t.Reconstruction).mean())
        (fun encoder decoder observation -> VaeBackprop.lossAndGradients encoder decoder c.Activation observation c.Samples c.Beta)

/// Both routes on the negative IWAE bound with K = Samples, −(Estimators.iwae).mean(), Vae.Fit's loss for it.
let private bothIwaeRoutes (c: Case) =
    bothRoutesOf c
        (fun model g x -> -(Estimators.iwae g c.Samples model x).mean())
        (fun encoder decoder observation -> VaeBackprop.iwaeLossAndGradients encoder decoder c.Activation observation c.Samples)

/// Cases for the IWAE bound: K from 1 to 6, β = 1 (the bound has no KL weight).
let private iwaeCases =
    Gen.zip cases (Gen.choose (1, 6)) |> Gen.map (fun (c, k) -> { c with Samples = k; Beta = 1.0 })

/// The library's MLP VAE and a copy of it on its own modules (the same Mlp networks and weights, so Vae trains
/// it through autograd), trained alike; returns both histories, the initial weights and both models' weights
/// after training, flattened.
let private fitBothWays (config: Vae.VaeConfig) (training: Training.TrainingConfig) (data: Tensor) =
    use fast = new Vae.VariationalAutoencoder(config)
    let copy (net: Networks.Module) sizes =
        let twin = Mlp.create sizes (Some config.Activation)
        use _ = torch.no_grad ()
        for mine, theirs in List.zip (List.ofSeq (twin.parameters ())) (List.ofSeq (net.parameters ())) do
            mine.copy_(theirs) |> ignore
        twin :> Networks.Module
    let outputs = match config.Likelihood with Vae.Bernoulli -> config.InputSize | Vae.Gaussian -> 2 * config.InputSize
    let encoder = copy fast.Networks.Encoder (config.InputSize :: config.HiddenSizes @ [ 2 * config.LatentSize ])
    let decoder = copy fast.Networks.Decoder (config.LatentSize :: List.rev config.HiddenSizes @ [ outputs ])
    use slow = new Vae.VariationalAutoencoder(config, encoder, decoder)
    // The closed-form step leaves no graph behind it; the own modules' step is autograd's.
    use g = new torch.Generator(1UL)
    use probe = data.narrow(0L, 0L, 4L)
    use fastLoss = fast.LossAndGradients(g, probe)
    use slowLoss = slow.LossAndGradients(g, probe)
    Expect.isFalse fastLoss.requires_grad "the built-in MLPs take the closed-form path"
    Expect.isTrue slowLoss.requires_grad "own modules take autograd's path"
    let before = weights fast.Networks.Parameters
    let historyFast = fast.Fit(data, training)
    let historySlow = slow.Fit(data, training)
    historyFast, historySlow, before, weights fast.Networks.Parameters, weights slow.Networks.Parameters

let tests =
    testList "VaeBackprop" [
        testPropertyWithConfig (Accuracy.properties 60)
            "the closed-form gradient of the SGVB-B loss equals autograd's for random MLPs, activations, decoders, L and β"
            (Prop.forAll (Arb.fromGen cases) (fun c ->
                let lossA, lossB, diff, scale = bothRoutes c
                Expect.floatClose Accuracy.double lossB lossA $"the loss, %A{c}"
                Expect.isLessThan diff (Accuracy.double.absolute * (1.0 + scale)) $"largest gradient difference, %A{c}"
                Expect.isGreaterThan scale 0.0 "the gradient is not trivially zero"))
        testPropertyWithConfig (Accuracy.properties 60)
            "the closed-form IWAE loss equals autograd's and so do its gradients, for random MLPs, activations, decoders, K and batch"
            (Prop.forAll (Arb.fromGen iwaeCases) (fun c ->
                let lossA, lossB, diff, scale = bothIwaeRoutes c
                Expect.equal lossB lossA $"the loss, bit for bit (the same draws, the same functions), %A{c}"
                Expect.isLessThan diff (Accuracy.double.absolute * (1.0 + scale)) $"largest gradient difference, %A{c}"
                Expect.isGreaterThan scale 0.0 "the gradient is not trivially zero"))
        testList "Fit on the IWAE bound (K = 5, batch 20, Adam) ends with the same weights by the closed form as by autograd" [
            for likelihood, activation, binarize in [ Vae.Bernoulli, Mlp.Tanh, true; Vae.Gaussian, Mlp.ReLU, false ] ->
                test $"{likelihood}, {activation}, dynamic binarisation {binarize}" {
                    use g = new torch.Generator(11UL)
                    use data = torch.rand([| 100L; 12L |], generator = g)
                    let config =
                        { Vae.defaults 12 3 with
                            HiddenSizes = [ 10; 8 ]; Activation = activation; Likelihood = likelihood; Samples = 5
                            Objective = Vae.ImportanceWeighted; Seed = 4; Device = "cpu" }
                    let training = { Training.defaults with Epochs = 3; BatchSize = 20; Seed = 7; DynamicBinarization = binarize }
                    let historyFast, historySlow, before, fast, slow = fitBothWays config training data
                    use _f = fast
                    use _s = slow
                    for a, b in List.zip historyFast historySlow do
                        Expect.floatClose Accuracy.single a.TrainLoss b.TrainLoss $"epoch {a.Epoch}'s training loss"
                    use diff = (fast - slow).abs().max()
                    use _b = before
                    use moved = (fast - before).abs().max()
                    Expect.isGreaterThan (moved.item<float32> ()) 1e-3f "training moved the weights"
                    Expect.isLessThan (diff.item<float32> ()) (float32 Accuracy.single.absolute) "the same weights to float32 rounding"
                }
        ]
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

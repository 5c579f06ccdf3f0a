module Research.Core.Tests.MarginalLikelihoodTests

open System
open Expecto
open FsCheck.FSharp
open TorchSharp
open Research.Core
open Research.Core.Tests.ReparameterizationTests

/// Expects an ArgumentException or one of its subclasses.
let private throwsArgument (f: unit -> unit) (message: string) =
    let thrown = try f (); None with :? ArgumentException as e -> Some e
    Expect.isSome thrown $"{message}: an ArgumentException"

let private within lo hi = Gen.choose (0, 10000) |> Gen.map (fun i -> lo + (hi - lo) * float i / 10000.0)

let tests =
    testList "MarginalLikelihood" [
        testPropertyWithConfig (Accuracy.properties 20) "logGaussian with a diagonal Cholesky factor is Gaussian.logDensity"
            (Prop.forAll (Arb.fromGen (Gen.zip3 (within -2.0 2.0) (within 0.1 3.0) (Gen.choose (0, 1000000)))) (fun (shift, scale, seed) ->
                use g = new torch.Generator(uint64 seed)
                let mean = torch.randn([| 4L; 3L |], dtype = torch.float64, generator = g) + shift
                let sigma = torch.rand([| 4L; 3L |], dtype = torch.float64, generator = g) * scale + 0.05
                let z = torch.randn([| 7L; 4L; 3L |], dtype = torch.float64, generator = g) * 2.0
                let full = MarginalLikelihood.logGaussian mean (torch.diag_embed sigma) z
                let diagonal = Gaussian.logDensity mean (sigma.log() * 2.0) z
                Expect.isLessThan ((full - diagonal).abs().max().item<float> ()) 1e-9 "the same log-density"))

        test "fitGaussian is the maximum-likelihood fit: the sample mean and the covariance with divisor L" {
            use g = new torch.Generator(51UL)
            let mixing = torch.tensor([| 1.0; 0.0; 0.5; 2.0 |], dtype = torch.float64).reshape(2L, 2L)
            let z = torch.randn([| 50000L; 2L; 2L |], dtype = torch.float64, generator = g).matmul(mixing.T) + torch.tensor([| 1.0; -3.0 |], dtype = torch.float64)
            let mean, l = MarginalLikelihood.fitGaussian z
            let covariance = l.matmul(l.transpose(1L, 2L))
            let centred = (z - z.mean([| 0L |])).select(1L, 1L)
            let direct = centred.T.matmul(centred) / 50000.0
            Expect.isLessThan ((covariance.select(0L, 1L) - direct).abs().max().item<float> ()) 1e-8 "divisor L"
            Expect.isLessThan ((mean.select(0L, 0L) - torch.tensor([| 1.0; -3.0 |], dtype = torch.float64)).abs().max().item<float> ()) 0.03 "the mean"
            Expect.isLessThan ((covariance.select(0L, 0L) - mixing.matmul(mixing.T)).abs().max().item<float> ()) 0.1 "the covariance A Aᵀ"
        }

        test "on a linear-Gaussian model the Appendix D estimate (defaults: L = 200) is within 0.05 nats of the exact log p(x)" {
            let model, x, _, logPx = AisTests.linearGaussian 41UL 40 8L 3L
            use g = new torch.Generator(42UL)
            let e = MarginalLikelihood.estimate g MarginalLikelihood.defaults 3 model x
            let gap, se = meanAndSe (e.LogMarginal - logPx)
            Expect.isLessThan (abs gap) (Accuracy.standardErrors * se + 0.01) $"mean estimate − log p(x) = {gap:F4} ± {se:F4}"
            Expect.isLessThan (abs gap) 0.05 $"mean estimate − log p(x) = {gap:F4} ± {se:F4}"
            Expect.isLessThan ((e.LogMarginal - logPx).abs().max().item<float> ()) 0.2 "every example within 0.2 nats (0.1 seen)"
            let rate = e.AcceptanceRate.mean().item<float> ()
            Expect.isGreaterThan rate 0.5 $"acceptance {rate:F3} near the 0.65 aimed at"
            Expect.isLessThan rate 0.85 $"acceptance {rate:F3} near the 0.65 aimed at"
            let ess = e.EffectiveSampleSize.mean().item<float> ()
            Expect.isGreaterThan ess 100.0 $"a Gaussian q fits a Gaussian posterior: ESS {ess:F1} of 200"
        }

        test "the estimate is in float64, one per example, over chunks; bad settings are ArgumentExceptions before any work" {
            let model, x, _, _ = AisTests.linearGaussian 43UL 9 6L 2L
            use g = new torch.Generator(44UL)
            let small = { MarginalLikelihood.defaults with WarmUp = 5; Transitions = 3; Chains = 4; Chunk = 4 }
            let e = MarginalLikelihood.estimate g small 2 model x
            Expect.equal e.LogMarginal.shape [| 9L |] "one estimate per example over chunks of 4, 4, 1"
            Expect.equal e.LogMarginal.dtype torch.float64 "float64"
            Expect.equal e.StepSize.shape [| 9L |] "one step size per example"
            let mutable calls = 0
            let counting : Estimators.LatentVariableModel =
                { model with LogLikelihood = fun z x -> calls <- calls + 1; model.LogLikelihood z x }
            let refuses (config: MarginalLikelihood.Config) latent what =
                throwsArgument (fun () -> MarginalLikelihood.estimate g config latent counting x |> ignore) what
            refuses { small with Chains = 0 } 2 "Chains ≥ 1"
            refuses { small with Candidates = 0 } 2 "Candidates ≥ 1"
            refuses { small with Transitions = 0 } 2 "Transitions ≥ 1"
            refuses { small with Chains = 1; Transitions = 1 } 2 "at least 2 samples per stage"
            refuses { small with WarmUp = -1 } 2 "WarmUp ≥ 0"
            refuses { small with LeapfrogSteps = 0 } 2 "LeapfrogSteps ≥ 1"
            refuses { small with Chunk = 0 } 2 "Chunk ≥ 1"
            refuses { small with InitialStepSize = 0.0 } 2 "a positive step size"
            refuses { small with Adaptation = { small.Adaptation with TargetAcceptance = 1.0 } } 2 "target in (0, 1)"
            refuses small 0 "latentSize ≥ 1"
            throwsArgument (fun () -> MarginalLikelihood.estimate g small 2 counting (x.flatten()) |> ignore) "x [B,P]"
            Expect.equal calls 0 "the model was never evaluated"
        }

        test "on a small MNIST VAE (N_z = 3, 784-100-3, 20 epochs on 1000 images) the Appendix D estimate agrees with the IW estimate (K = 5000) and AIS" {
            use all = fst (Mnist.load (IdxTests.mnistDirectory ()) Mnist.Train)
            use train = all.narrow(0L, 0L, 1000L)
            use allTest = fst (Mnist.load (IdxTests.mnistDirectory ()) Mnist.Test)
            use test = allTest.narrow(0L, 0L, 10L)
            use vae = new Vae.VariationalAutoencoder({ Vae.paper 3 100 with Device = "cpu" })
            vae.Fit(train, { Training.defaults with Epochs = 20; BatchSize = 100; LearningRate = 3e-3 }) |> ignore
            let clock = Diagnostics.Stopwatch.StartNew()
            let iw = vae.EstimateLogLikelihood(test, 5000, 0)
            let tIw = clock.Elapsed.TotalSeconds
            let ais = vae.EstimateLogLikelihood(test, Vae.AnnealedImportanceSampling { Ais.defaults with Steps = 200 }, 4, 0)
            let tAis = clock.Elapsed.TotalSeconds - tIw
            use g = new torch.Generator(5UL)
            let e = MarginalLikelihood.estimate g MarginalLikelihood.defaults 3 vae.Model test
            let appendixD = e.LogMarginal.mean().item<float> ()
            let tD = clock.Elapsed.TotalSeconds - tIw - tAis
            let message = $"IW (K = 5000) {iw.Mean:F3} ± {iw.StandardError:F3} ({tIw:F1} s), AIS (T = 200, 4 chains) {ais.Mean:F3} ({tAis:F1} s), Appendix D {appendixD:F3} ({tD:F1} s)"
            // IW and AIS are stochastic lower bounds on log p(x), the Appendix D estimate a stochastic upper
            // bound; with N_z = 3 all three are within a few tenths of a nat of log p(x) (−198.4, −197.6 and
            // −197.9 seen on these 10 images), so 0.5 nats between them is a failure of one of them, not noise.
            Expect.isLessThan (abs (appendixD - ais.Mean)) 0.5 $"Appendix D against AIS: {message}"
            Expect.isGreaterThan appendixD (iw.Mean - 0.5) $"Appendix D above the IW lower bound, up to noise: {message}"
            Expect.isLessThan (abs (appendixD - iw.Mean)) 1.0 $"Appendix D against IW: {message}"
        }
    ]

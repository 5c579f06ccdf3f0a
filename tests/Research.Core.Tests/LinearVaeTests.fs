/// Lucas et al. (2019): the linear VAE with one shared decoder variance is probabilistic PCA's model, so
/// trained to its optimum it reaches PPCA's closed-form maximum likelihood, and its ELBO is tight there.
module Research.Core.Tests.LinearVaeTests

open Expecto
open TorchSharp
open Research.Core

/// A PPCA model of 8 dimensions with 2 latent ones, and 1000 rows drawn from it (float32).
let private simulated (seed: int) =
    use g = new torch.Generator(uint64 seed)
    let truth : ProbabilisticPca.PpcaModel =
        { Mean = torch.randn([| 8L |], dtype = torch.float64, generator = g)
          W = torch.randn([| 8L; 2L |], dtype = torch.float64, generator = g) * 1.5
          Sigma2 = 0.25 }
    use x = ProbabilisticPca.sample truth 1000 g
    x.to_type(torch.float32)

/// Trains LinearVae.create's model from `seed` with fitToOptimum (100 epochs a stage) on `x`; returns
/// (log p(x) − PPCA's maximum, ELBO − log p(x), learned σ² / PPCA's σ²).
let private gapsAtOptimum (x: torch.Tensor) (ppca: ProbabilisticPca.PpcaModel) (exact: float) (seed: int) =
    use vae = LinearVae.create 8 2 seed
    LinearVae.fitToOptimum vae x 100
    let logP = vae.LogLikelihood(x, 1000, 0)
    logP - exact, vae.Elbo(x, 100, 0) - logP, LinearVae.noiseVariance vae / ppca.Sigma2

/// No model of this class beats the ML fit, and the IW estimate is below log p in expectation; Lucas et al.:
/// the ELBO is tight at the optimum, and the shared variance is PPCA's σ².
let private expectAtOptimum (label: string) (gapP: float, gapElbo: float, ratio: float) =
    Expect.isLessThan gapP 0.005 $"{label}: log p(x) is at most PPCA's maximum"
    Expect.isGreaterThan gapP -0.01 $"{label}: log p(x) reaches PPCA's maximum (within 0.01 nats)"
    Expect.isGreaterThan gapElbo -0.02 $"{label}: the ELBO is tight at the optimum (within 0.02 nats)"
    Expect.floatClose { absolute = 0.0; relative = 0.05 } ratio 1.0 $"{label}: the shared variance is PPCA's σ²"

/// Minutes: fitToOptimum from many starts, the claim its doc comment makes.
let longTests =
    testList "LinearVae" [
        test "fitToOptimum reaches PPCA's maximum from each of 30 seeds (within 0.01 nats, the ELBO within 0.02)" {
            use x = simulated 5
            let ppca = ProbabilisticPca.fit x 2
            let exact = ProbabilisticPca.meanLogLikelihood ppca x
            for seed in 0 .. 29 do
                expectAtOptimum $"seed {seed}" (gapsAtOptimum x ppca exact seed)
        }
    ]

let tests =
    testList "LinearVae" [
        test "the linear VAE reaches PPCA's maximum log-likelihood and its ELBO is tight there" {
            use x = simulated 5
            let ppca = ProbabilisticPca.fit x 2
            let exact = ProbabilisticPca.meanLogLikelihood ppca x
            use untrained = LinearVae.create 8 2 1
            Expect.isLessThan (untrained.Elbo(x, 10, 0)) (exact - 1.0) "untrained, the bound is far below the maximum"
            expectAtOptimum "seed 1" (gapsAtOptimum x ppca exact 1)
        }
        test "the same seed gives the same weights, the encoder (a bare affine layer) included" {
            let weights seed =
                use vae = LinearVae.create 8 2 seed
                [ for name, p in vae.Networks.NamedParameters -> name, p.data<float32>().ToArray() ]
            let a, b, c = weights 4, weights 4, weights 5
            for (name, x), (_, y) in List.zip a b do Expect.sequenceEqual x y $"{name}: the same seed"
            for (name, x), (_, y) in List.zip a c do
                if name <> "decoder.logVariance" then Expect.isFalse (x = y) $"{name}: another seed"
        }
        test "the shared-variance decoder lays out [means, log-variances] and has one variance parameter" {
            use d = new LinearVae.SharedVarianceDecoder(torch.nn.Linear(2L, 3L), -1.0)
            use z = torch.zeros(4L, 2L)
            use y = d.forward z
            Expect.sequenceEqual y.shape [| 4L; 6L |] "[n, 2·outputs]"
            use tail = y.narrow(1L, 3L, 3L)
            Expect.isTrue (tail.eq(torch.tensor(-1.0f)).all().item<bool> ()) "the log-variances"
            Expect.equal (Seq.length (d.parameters ())) 3 "weight, bias, log-variance"
        }
    ]

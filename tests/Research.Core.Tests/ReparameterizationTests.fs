module Research.Core.Tests.ReparameterizationTests

open System
open Expecto
open FsCheck.FSharp
open TorchSharp
open Research.Core

/// A small VAE with fixed random weights, float64, and data drawn from its own generative model:
/// p(z) = N(0, I), p(x|z) = Bernoulli(σ(zW + b)), q(z|x) = N(xA, diag exp(xC − 1)). The encoder is
/// deliberately not the true posterior, so the ELBO is strictly below log p(x).
/// Returns the model, the data x [B,P] and the decoder weight W (so tests can differentiate in it).
let toyModel (seed: uint64) (examples: int) : Estimators.LatentVariableModel * torch.Tensor * torch.Tensor =
    let p, d = 20L, 3L
    use g = new torch.Generator(seed)
    let randn (shape: int64[]) = torch.randn(ReadOnlySpan<int64>(shape), dtype = torch.float64, generator = g)
    let w, b = randn [| d; p |], randn [| p |] * 0.5
    let a, c = randn [| p; d |] * 0.3, randn [| p; d |] * 0.1
    let z = randn [| int64 examples; d |]
    let probabilities = torch.sigmoid(z.matmul(w) + b)
    let x = (torch.rand(ReadOnlySpan<int64>([| int64 examples; p |]), dtype = torch.float64, generator = g).lt(probabilities)).to_type(torch.float64)
    let model : Estimators.LatentVariableModel =
        { Encode = fun x -> x.matmul(a), x.matmul(c) - 1.0
          LogLikelihood = fun z x -> Likelihood.bernoulliLogits (z.matmul(w) + b) x }
    model, x, w

/// Mean and standard error of the entries of a 1-D tensor.
let meanAndSe (t: torch.Tensor) =
    let n = float t.shape.[0]
    t.mean().item<float>(), t.std().item<float>() / sqrt n

let private within lo hi = Gen.choose (0, 10000) |> Gen.map (fun i -> lo + (hi - lo) * float i / 10000.0)

/// Samples of the per-sample gradients (∂f(z)/∂μ, ∂f(z)/∂σ) at z = μ + σε, each [N], by autograd
/// through Gaussian.sample (μ, σ replicated N times so that each entry's gradient is one sample's).
let private pathwiseGradients (seed: uint64) (f: torch.Tensor -> torch.Tensor) (mu: float) (sigma: float) =
    let n = 20000L
    let muN = torch.full(n, mu, dtype = torch.float64)
    let sigmaN = torch.full(n, sigma, dtype = torch.float64)
    // The same seed for both derivatives: they are taken along the same noise draws.
    let draw (m: torch.Tensor) (s: torch.Tensor) =
        use g = new torch.Generator(seed)
        Gaussian.sample g 1 m (s.log() * 2.0)
    Diff.grad (fun m -> (f (draw m sigmaN)).sum()) muN, Diff.grad (fun s -> (f (draw muN s)).sum()) sigmaN

/// Checks that the mean of per-sample gradients is within Accuracy.standardErrors SEs of `truth`.
let private expectUnbiased (samples: torch.Tensor) (truth: float) (message: string) =
    let mean, se = meanAndSe samples
    Expect.isLessThanOrEqual (abs (mean - truth)) (Accuracy.standardErrors * se + 1e-12)
        $"{message}: pathwise mean {mean} vs analytic {truth} (SE {se})"

let tests =
    testList "Reparameterization" [
        testPropertyWithConfig (Accuracy.properties 20) "∇ of E[z²] = μ² + σ²: pathwise gradients average to (2μ, 2σ)"
            (Prop.forAll (Arb.fromGen (Gen.zip3 (within -2.0 2.0) (within 0.2 2.0) (Gen.choose (0, 1000000)))) (fun (mu, sigma, seed) ->
                let dMu, dSigma = pathwiseGradients (uint64 seed) (fun z -> z * z) mu sigma
                expectUnbiased dMu (2.0 * mu) "∂/∂μ"
                expectUnbiased dSigma (2.0 * sigma) "∂/∂σ"))

        testPropertyWithConfig (Accuracy.properties 20) "∇ of E[sin z] = sin μ·e^(−σ²/2): pathwise gradients match"
            (Prop.forAll (Arb.fromGen (Gen.zip3 (within -3.0 3.0) (within 0.2 2.0) (Gen.choose (0, 1000000)))) (fun (mu, sigma, seed) ->
                let dMu, dSigma = pathwiseGradients (uint64 seed) (fun z -> z.sin()) mu sigma
                let damping = exp (-sigma * sigma / 2.0)
                expectUnbiased dMu (cos mu * damping) "∂/∂μ"
                expectUnbiased dSigma (-sigma * sin mu * damping) "∂/∂σ"))

        test "sampleWith is μ + σε exactly, with ∂z/∂μ = 1 and ∂z/∂log σ² = ½σε" {
            use g = new torch.Generator(3UL)
            let eps = torch.randn(7L, dtype = torch.float64, generator = g)
            let mu = torch.randn(7L, dtype = torch.float64, generator = g)
            let logVar = torch.randn(7L, dtype = torch.float64, generator = g)
            let sigma = (logVar * 0.5).exp()
            let z = Gaussian.sampleWith eps mu logVar
            Expect.isLessThanOrEqual ((z - (mu + sigma * eps)).abs().max().item<float>()) 1e-15 "z = μ + σε"
            let dLogVar = Diff.grad (fun v -> (Gaussian.sampleWith eps mu v).sum()) logVar
            Expect.isLessThanOrEqual ((dLogVar - sigma * eps * 0.5).abs().max().item<float>()) 1e-15 "∂z/∂log σ²"
            let dMu = Diff.grad (fun m -> (Gaussian.sampleWith eps m logVar).sum()) mu
            Expect.isLessThanOrEqual ((dMu - 1.0).abs().max().item<float>()) 0.0 "∂z/∂μ"
        }

        test "SGVB A and B estimate the same ELBO (difference of means within 4 SE)" {
            let model, x, _ = toyModel 17UL 2000
            use g = new torch.Generator(18UL)
            let a = Estimators.elbo (Estimators.sgvbA g 1 model x)
            let b = Estimators.elbo (Estimators.sgvbB g 1 model x)
            let mean, se = meanAndSe (a - b)
            Expect.isLessThanOrEqual (abs mean) (Accuracy.standardErrors * se) $"mean(A − B) = {mean}, SE {se}"
            // B replaces the sampled KL by its expectation, so its variance is not larger than A's.
            let _, seA = meanAndSe a
            let _, seB = meanAndSe b
            Expect.isLessThanOrEqual seB seA "SGVB B has no more variance than A"
        }
    ]

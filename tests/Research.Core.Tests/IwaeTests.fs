module Research.Core.Tests.IwaeTests

open System
open Expecto
open TorchSharp
open Research.Core
open Research.Core.Tests.ReparameterizationTests

/// A linear-Gaussian latent-variable model (probabilistic PCA): z ~ N(0, I_d), x | z ~ N(zW + b, σ² I_p), whose
/// log p(x) = log N(x; b, WᵀW + σ²I) is exact; q(z|x) is its exact (diagonal: W's rows are orthogonal)
/// posterior, or that posterior spoiled (means shrunk, variances inflated) so that every bound is strict.
/// float64 throughout.
let private linearGaussianWith (spoiled: bool) (seed: uint64) (rows: int) =
    let p, d, noise = 6L, 2L, 0.3
    use g = new torch.Generator(seed)
    let randn (shape: int64[]) = torch.randn(ReadOnlySpan<int64>(shape), dtype = torch.float64, generator = g)
    // W's rows orthogonal, so that WWᵀ, and with it the exact posterior's covariance, is diagonal.
    let struct (q, _) = torch.linalg.qr(randn [| p; d |])
    let w, b = q.T * torch.tensor([| 1.5; 0.8 |], dtype = torch.float64).unsqueeze(1L), randn [| p |] * 0.5
    let z = randn [| int64 rows; d |]
    let x = z.matmul(w) + b + randn [| int64 rows; p |] * sqrt noise
    // Exact posterior: covariance σ²M⁻¹ with M = WWᵀ + σ²I, mean (x − b)WᵀM⁻¹.
    let m = w.matmul(w.T) + torch.eye(d, dtype = torch.float64) * noise
    let mInv = torch.linalg.inv m
    let postMean = (x - b).matmul(w.T).matmul(mInv)
    let postLogVar = (mInv.diagonal() * noise).log()
    let model : Estimators.LatentVariableModel =
        { Encode = fun x ->
            let shrink, inflate = (if spoiled then 0.7, 0.8 else 1.0, 0.0)
            ((x - b).matmul(w.T).matmul(mInv) * shrink), (postLogVar + inflate).expand(x.shape.[0], d)
          LogLikelihood = fun z x -> Gaussian.logDensity (z.matmul(w) + b) (torch.full(p, Math.Log noise, dtype = torch.float64)) x }
    ignore postMean
    let covariance = w.T.matmul(w) + torch.eye(p, dtype = torch.float64) * noise
    let l = torch.linalg.cholesky covariance
    let centred = (x - b).T
    let solved = torch.linalg.solve_triangular(l, centred, upper = false)
    let logPx = -0.5 * (float p * Math.Log(2.0 * Math.PI)) - l.diagonal().log().sum() - 0.5 * solved.square().sum(0L)
    model, x, logPx

let private linearGaussian = linearGaussianWith true

let tests =
    testList "IWAE" [
        test "with K = 1 the IWAE loss and gradients are SGVB A's with L = 1, exactly (same seed, same noise)" {
            use g = new torch.Generator(3UL)
            use x = torch.bernoulli(torch.rand([| 40L; 12L |], generator = g) * 0.8, g)
            let config = { Vae.defaults 12 3 with HiddenSizes = [ 10 ]; Samples = 1; Seed = 5; Device = "cpu" }
            use iwae = new Vae.VariationalAutoencoder({ config with Objective = Vae.ImportanceWeighted })
            use sgvbA = new Vae.VariationalAutoencoder({ config with KlEstimator = Vae.MonteCarlo })
            let step (vae: Vae.VariationalAutoencoder) =
                use generator = new torch.Generator(9UL)
                let loss = vae.LossAndGradients(generator, x).item<float32> ()
                loss, [ for p in vae.Networks.Parameters -> p.grad.clone () ]
            let lossI, gradI = step iwae
            let lossA, gradA = step sgvbA
            Expect.equal lossI lossA "the same loss, bit for bit"
            for a, b in List.zip gradI gradA do
                Expect.isLessThan ((a - b).abs().max().item<float32> ()) 1e-6f "the same gradients"
        }

        test "ELBO ≤ IWAE_5 ≤ IWAE_10 ≤ IWAE_50 ≤ log p(x) on average, on a linear-Gaussian model whose log p is exact" {
            let model, x, logPx = linearGaussian 41UL 2000
            use g = new torch.Generator(42UL)
            let bound k = Estimators.iwae g k model x
            let elbo = Estimators.elbo (Estimators.sgvbA g 1 model x)
            let bounds = [ elbo; bound 5; bound 10; bound 50 ]
            for (name, lower), upper in List.zip (List.zip [ "ELBO"; "IWAE_5"; "IWAE_10"; "IWAE_50" ] bounds) (List.tail bounds @ [ logPx ]) do
                let gap, se = meanAndSe (upper - lower)
                Expect.isGreaterThan gap (Accuracy.standardErrors * se) $"the bound above {name} is higher: gap {gap:F4} ± {se:F4}"
            let gap, se = meanAndSe (logPx - bound 2000)
            Expect.isLessThan gap (0.1 * (fst (meanAndSe (logPx - elbo)))) $"IWAE_2000 is close to log p: {gap:F4} ± {se:F4}"
        }

        test "the importance weights' effective sample size is K under the exact posterior and well below it otherwise" {
            for spoiled, check in [ false, (fun (ess: float) -> Expect.floatClose Accuracy.double ess 64.0 "K: every weight is p(x)")
                                    true, (fun ess -> Expect.isLessThan ess 40.0 "a spoiled posterior wastes samples") ] do
                let model, x, logPx = linearGaussianWith spoiled 43UL 200
                use g = new torch.Generator(44UL)
                let bound, ess = Estimators.importanceWeightedWithEss g 64 16 model x
                check (ess.mean().item<float> ())
                if not spoiled then Expect.isLessThan ((bound - logPx).abs().max().item<float> ()) 1e-9 "exact posterior: the estimate is log p(x) itself"
        }

        test "training on the IWAE bound raises it; Beta ≠ 1 with it is an ArgumentException" {
            use g = new torch.Generator(7UL)
            use x = torch.bernoulli(torch.rand([| 300L; 12L |], generator = g) * 0.8, g)
            let config = { Vae.defaults 12 2 with HiddenSizes = [ 16 ]; Samples = 5; Objective = Vae.ImportanceWeighted; Seed = 1; Device = "cpu" }
            use vae = new Vae.VariationalAutoencoder(config)
            let before = vae.LogLikelihood(x, 5, 0)
            let history = vae.Fit(x, { Training.defaults with Epochs = 5; BatchSize = 30; LearningRate = 3e-3; Validation = Some x })
            let after = vae.LogLikelihood(x, 5, 0)
            Expect.isGreaterThan after (before + 0.1) $"IWAE_5 rose from {before:F3} to {after:F3}"
            // ValidationLoss is the negative IWAE_5 bound with the model's seed.
            Expect.floatClose Accuracy.single (List.last history).ValidationLoss.Value (-(vae.LogLikelihood(x, 5, config.Seed))) "ValidationLoss = −IWAE_K"
            Expect.throwsT<ArgumentException> (fun () -> new Vae.VariationalAutoencoder({ config with Beta = 0.5 }) |> ignore) "Beta must be 1"
        }
    ]

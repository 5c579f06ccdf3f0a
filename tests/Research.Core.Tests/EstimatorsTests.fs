module Research.Core.Tests.EstimatorsTests

open System
open Expecto
open MathNet.Numerics.Distributions
open TorchSharp
open Research.Core
open Research.Core.Tests.ReparameterizationTests

/// log σ(ℓ) and log(1 − σ(ℓ)) the naive way, in float64, for moderate ℓ.
let private naiveBernoulli (logit: float) (x: float) =
    let p = 1.0 / (1.0 + exp -logit)
    x * log p + (1.0 - x) * log (1.0 - p)

let tests =
    testList "Estimators" [
        test "the importance-weighted bound is above the ELBO and grows with K (K = 1, 10, 100)" {
            let model, x, _ = toyModel 21UL 500
            use g = new torch.Generator(22UL)
            use _ = torch.no_grad ()
            // A low-variance reference for the ELBO itself: closed-form KL, 100 samples.
            let elbo = Estimators.elbo (Estimators.sgvbB g 100 model x)
            let iw k = Estimators.importanceWeighted g k 10 model x
            let iw1, iw10, iw100 = iw 1, iw 10, iw 100
            // Paired per-example differences: log p(x) cancels, only the Monte-Carlo noise remains.
            let gap1, se1 = meanAndSe (iw1 - elbo)
            let gap10, se10 = meanAndSe (iw10 - iw1)
            let gap100, se100 = meanAndSe (iw100 - iw10)
            Expect.isLessThanOrEqual (abs gap1) (Accuracy.standardErrors * se1) $"E[IW₁] = ELBO: mean difference {gap1}, SE {se1}"
            Expect.isGreaterThan gap10 (Accuracy.standardErrors * se10) $"IW₁₀ > IW₁: mean difference {gap10}, SE {se10}"
            Expect.isGreaterThan gap100 (Accuracy.standardErrors * se100) $"IW₁₀₀ > IW₁₀: mean difference {gap100}, SE {se100}"
            // The bound tightens at a decreasing rate (gap to log p(x) ~ 1/K).
            Expect.isLessThan gap100 gap10 "diminishing returns"
        }

        test "IW with K = 1 has the ELBO's expectation (SGVB A and B, fresh noise)" {
            let model, x, _ = toyModel 23UL 2000
            use g = new torch.Generator(24UL)
            let iw1 = Estimators.importanceWeighted g 1 1 model x
            for name, estimator in [ "A", Estimators.sgvbA; "B", Estimators.sgvbB ] do
                let mean, se = meanAndSe (iw1 - Estimators.elbo (estimator g 1 model x))
                Expect.isLessThanOrEqual (abs mean) (Accuracy.standardErrors * se) $"IW₁ − ELBO_{name}: mean {mean}, SE {se}"
        }

        test "chunking does not change the importance-weighted bound (same seed, float32)" {
            // B·D = 15 noise values per sample, not a multiple of the CPU normal sampler's block of 16,
            // so drawing a chunk in one call would give different noise for different chunk sizes.
            let model64, x64, _ = toyModel 25UL 5
            // The same model in float32: cast at the boundaries.
            let model : Estimators.LatentVariableModel =
                { Encode = fun x ->
                    let m, v = model64.Encode(x.to_type(torch.float64))
                    m.to_type(torch.float32), v.to_type(torch.float32)
                  LogLikelihood = fun z x -> (model64.LogLikelihood (z.to_type(torch.float64)) (x.to_type(torch.float64))).to_type(torch.float32) }
            let x = x64.to_type(torch.float32)
            let run chunk =
                use g = new torch.Generator(26UL)
                Interop.toArray (Estimators.importanceWeighted g 50 chunk model x)
            let reference = run 50
            for chunk in [ 1; 7; 64 ] do
                Array.iteri2 (fun i a b -> Expect.floatClose Accuracy.single (float a) (float b) $"chunk {chunk}, example {i}") (run chunk) reference
        }

        test "the decoder never sees more than `chunk` samples at once" {
            let model, x, _ = toyModel 27UL 8
            let mutable largest = 0L
            let spy = { model with LogLikelihood = fun z x -> largest <- max largest z.shape.[0]; model.LogLikelihood z x }
            use g = new torch.Generator(28UL)
            let bound = Estimators.importanceWeighted g 100 16 spy x
            Expect.equal largest 16L "at most 16 samples of z per decoder call"
            Expect.sequenceEqual bound.shape [| 8L |] "one bound per example"
        }

        test "estimators are differentiable, and run under no_grad without recording" {
            let model, x, w = toyModel 29UL 16
            let withDecoder (w': torch.Tensor) =
                { model with LogLikelihood = fun z x -> Likelihood.bernoulliLogits (z.matmul(w')) x }
            for name, objective in
                    [ "A", (fun g m -> Estimators.elbo (Estimators.sgvbA g 2 m x))
                      "B", (fun g m -> Estimators.elbo (Estimators.sgvbB g 2 m x))
                      "IW", (fun g m -> Estimators.importanceWeighted g 5 2 m x) ] do
                let gradient = Diff.grad (fun w' -> use g = new torch.Generator(30UL) in (objective g (withDecoder w')).sum()) w
                let norm = gradient.norm().item<float>()
                Expect.isTrue (Double.IsFinite norm && norm > 0.0) $"{name}: a finite, non-zero gradient in the decoder weights ({norm})"
                use _ = torch.no_grad ()
                use g = new torch.Generator(30UL)
                Expect.isFalse (objective g model).requires_grad $"{name}: nothing recorded under no_grad"
        }

        test "samples and chunk below 1 are rejected" {
            let model, x, _ = toyModel 31UL 4
            use g = new torch.Generator(32UL)
            let throws f message = Expect.throwsT<ArgumentOutOfRangeException> (fun () -> f () |> ignore) message
            throws (fun () -> Estimators.sgvbA g 0 model x) "sgvbA: samples ≥ 1"
            throws (fun () -> Estimators.sgvbB g 0 model x) "sgvbB: samples ≥ 1"
            throws (fun () -> Estimators.importanceWeighted g 0 1 model x) "IW: samples ≥ 1"
            throws (fun () -> Estimators.importanceWeighted g 10 0 model x) "IW: chunk ≥ 1"
        }

        test "bernoulliLogits is x log σ(ℓ) + (1 − x) log(1 − σ(ℓ)), broadcasting [S,B,P] against [B,P]" {
            use g = new torch.Generator(33UL)
            let logits = torch.randn(3L, 4L, 5L, dtype = torch.float64, generator = g) * 4.0
            let x = torch.rand(4L, 5L, dtype = torch.float64, generator = g)   // soft targets in [0, 1] too
            let actual = Likelihood.bernoulliLogits logits x
            Expect.sequenceEqual actual.shape [| 3L; 4L |] "summed over the last dimension"
            for s in 0L .. 2L do
                for b in 0L .. 3L do
                    let expected = Seq.sum (seq { for p in 0L .. 4L -> naiveBernoulli (logits.[s, b, p].item<float>()) (x.[b, p].item<float>()) })
                    Expect.floatClose Accuracy.double (actual.[s, b].item<float>()) expected "log Bernoulli"
        }

        test "bernoulliLogits is finite and exact for |ℓ| = 100 in float32" {
            let logits = torch.tensor([| 100.0f; 100.0f; -100.0f; -100.0f |]).reshape(4L, 1L)
            let x = torch.tensor([| 1.0f; 0.0f; 1.0f; 0.0f |]).reshape(4L, 1L)
            let actual = Interop.toArray (Likelihood.bernoulliLogits logits x)
            // log σ(100) ≈ −e⁻¹⁰⁰ ≈ 0, log(1 − σ(100)) ≈ −100, and symmetrically.
            Array.iter2 (fun a e -> Expect.floatClose Accuracy.single (float a) e "saturated log-likelihood") actual [| 0.0; -100.0; -100.0; 0.0 |]
        }

        test "Likelihood.gaussian matches MathNet's Normal with a shared scalar log-variance" {
            use g = new torch.Generator(34UL)
            let mean = torch.randn(2L, 3L, 4L, dtype = torch.float64, generator = g)
            let x = torch.randn(3L, 4L, dtype = torch.float64, generator = g)
            let logVar = torch.tensor(-0.7)
            let actual = Likelihood.gaussian mean logVar x
            for s in 0L .. 1L do
                for b in 0L .. 2L do
                    let expected = Seq.sum (seq { for p in 0L .. 3L -> Normal.PDFLn(mean.[s, b, p].item<float>(), exp -0.35, x.[b, p].item<float>()) })
                    Expect.floatClose Accuracy.double (actual.[s, b].item<float>()) expected "log N(x; mean, σ²)"
        }
    ]

module Research.Core.Tests.AisTests

open System
open Expecto
open TorchSharp
open Research.Core
open Research.Core.Tests.ReparameterizationTests

/// A linear-Gaussian model (probabilistic PCA) with data simulated from it: z ~ N(0, I_d), x | z ~ N(zW + b, σ²I_p),
/// so that log p(x) = log N(x; b, WᵀW + σ²I) is exact and each generating z is an exact sample of p(z|x). q(z|x) is
/// the exact posterior spoiled (means shrunk, variances inflated) so that the ELBO is strictly below log p(x).
/// float64 throughout. Returns the model, x [B,p], the generating z [B,d] and log p(x) [B].
let linearGaussian (seed: uint64) (rows: int) (p: int64) (d: int64) =
    let noise = 0.3
    use g = new torch.Generator(seed)
    let randn (shape: int64[]) = torch.randn(ReadOnlySpan<int64>(shape), dtype = torch.float64, generator = g)
    let w, b = randn [| d; p |], randn [| p |] * 0.5
    let z = randn [| int64 rows; d |]
    let x = z.matmul(w) + b + randn [| int64 rows; p |] * sqrt noise
    // The exact posterior: covariance σ²M⁻¹ with M = WWᵀ + σ²I, mean (x − b)WᵀM⁻¹.
    let mInv = torch.linalg.inv (w.matmul(w.T) + torch.eye(d, dtype = torch.float64) * noise)
    let postLogVar = (mInv.diagonal() * noise).log()
    let model : Estimators.LatentVariableModel =
        { Encode = fun x -> ((x - b).matmul(w.T).matmul(mInv) * 0.7), (postLogVar + 0.8).expand(x.shape.[0], d)
          LogLikelihood = fun z x -> Gaussian.logDensity (z.matmul(w) + b) (torch.full(p, Math.Log noise, dtype = torch.float64)) x }
    let l = torch.linalg.cholesky (w.T.matmul(w) + torch.eye(p, dtype = torch.float64) * noise)
    let solved = torch.linalg.solve_triangular(l, (x - b).T, upper = false)
    let logPx = -0.5 * (float p * Math.Log(2.0 * Math.PI)) - l.diagonal().log().sum() - 0.5 * solved.square().sum(0L)
    model, x, z, logPx

/// Expects an ArgumentException or one of its subclasses (ArgumentOutOfRangeException, ArgumentNullException).
let private throwsArgument (f: unit -> unit) (message: string) =
    let thrown = try f (); None with :? ArgumentException as e -> Some e
    Expect.isSome thrown $"{message}: an ArgumentException"

let tests =
    testList "AIS" [
        test "the schedules run from β_0 = 0 to β_T = 1, increasing; the sigmoidal one is denser at the ends" {
            for kind in [ Ais.Linear; Ais.Sigmoidal 4.0 ] do
                let betas = Ais.schedule kind 100
                Expect.equal betas.Length 101 "T + 1 values"
                Expect.equal (betas.[0], betas.[100]) (0.0, 1.0) "exact ends"
                Expect.isTrue (Array.pairwise betas |> Array.forall (fun (a, b) -> b > a)) "strictly increasing"
            let sigmoidal = Ais.schedule (Ais.Sigmoidal 4.0) 100
            Expect.isLessThan (sigmoidal.[1] - sigmoidal.[0]) (0.1 * (sigmoidal.[51] - sigmoidal.[50])) "small steps near β = 0"
            Expect.floatClose Accuracy.double (Ais.schedule Ais.Linear 4).[1] 0.25 "linear"
        }

        test "with T = 1 (no transition) AIS is importance sampling from the prior: log (1/K) Σ p(x|z_k), z_k ~ N(0, I), the same noise" {
            let model, x, _, _ = linearGaussian 31UL 10 6L 2L
            let ais =
                use g = new torch.Generator(32UL)
                Ais.forward g { Ais.defaults with Steps = 1 } 50 2 model x
            use g = new torch.Generator(32UL)
            let z = torch.randn([| 50L; 10L; 2L |], dtype = torch.float64, generator = g)
            let expected = (model.LogLikelihood z x).logsumexp(0L) - Math.Log 50.0
            Expect.isLessThan ((ais.LogMarginal - expected).abs().max().item<float> ()) Accuracy.double.absolute "the same estimate"
            Expect.equal ais.LogWeights.shape [| 50L; 10L |] "[K,B] log-weights"
            Expect.isTrue (ais.AcceptanceRate.eq(1.0.ToScalar()).all().item<bool> ()) "no transition, nothing rejected"
        }

        test "AIS with the defaults (T = 500, 16 chains) converges to the exact log p(x) and is far tighter than the ELBO" {
            let model, x, _, logPx = linearGaussian 33UL 40 8L 3L
            use g = new torch.Generator(34UL)
            let ais = Ais.forward g Ais.defaults 16 3 model x
            let gap, se = meanAndSe (logPx - ais.LogMarginal)
            Expect.isLessThan (abs gap) (Accuracy.standardErrors * se) $"mean log p(x) − AIS = {gap:F4} ± {se:F4}"
            Expect.isLessThan (abs gap) 0.05 $"mean log p(x) − AIS = {gap:F4} ± {se:F4}"
            let elboGap, _ = meanAndSe (logPx - Estimators.elbo (Estimators.sgvbB g 1000 model x))
            Expect.isGreaterThan elboGap (10.0 * abs gap + 0.1) $"the ELBO is {elboGap:F3} nats below log p(x), AIS {gap:F4}"
            let ess = ais.EffectiveSampleSize
            Expect.isTrue (ess.ge(1.0.ToScalar()).all().item<bool> () && ess.le(16.0.ToScalar()).all().item<bool> ()) "1 ≤ ESS ≤ K"
            Expect.isGreaterThan (ess.mean().item<float> ()) 8.0 "fairly even weights on an easy posterior"
            let rate = ais.AcceptanceRate.mean().item<float> ()
            Expect.isGreaterThan rate 0.55 $"acceptance {rate:F3} near the 0.65 aimed at"
            Expect.isLessThan rate 0.85 $"acceptance {rate:F3} near the 0.65 aimed at"
        }

        test "BDMC on simulated data: forward AIS ≤ exact log p(x) ≤ reverse AIS on average, and the sandwich closes as T grows" {
            let model, x, z, logPx = linearGaussian 35UL 40 8L 3L
            use g = new torch.Generator(36UL)
            let sandwich steps = Ais.bidirectional g { Ais.defaults with Steps = steps } 16 model x z
            let short = sandwich 3
            let below, seBelow = meanAndSe (logPx - short.Forward.LogMarginal)
            let above, seAbove = meanAndSe (short.Reverse.LogMarginal - logPx)
            Expect.isGreaterThan below (Accuracy.standardErrors * seBelow) $"T = 3: forward {below:F4} ± {seBelow:F4} below log p(x)"
            Expect.isGreaterThan above (Accuracy.standardErrors * seAbove) $"T = 3: reverse {above:F4} ± {seAbove:F4} above log p(x)"
            let long = sandwich 500
            let gap, seGap = meanAndSe (long.Reverse.LogMarginal - long.Forward.LogMarginal)
            Expect.isLessThan gap (0.1 * (below + above)) $"T = 500: the gap {gap:F4} ± {seGap:F4} is a fraction of T = 3's {below + above:F4}"
            Expect.isLessThan gap 0.25 $"T = 500: reverse − forward = {gap:F4} ± {seGap:F4}"
            Expect.isGreaterThan gap (-Accuracy.standardErrors * seGap) $"T = 500: reverse − forward = {gap:F4} ± {seGap:F4} ≥ 0 up to noise"
        }

        test "chunks of examples give the estimates' shapes; bad settings and a z of the wrong shape are refused" {
            let model, x, z, _ = linearGaussian 37UL 9 6L 2L
            use g = new torch.Generator(38UL)
            let small = { Ais.defaults with Steps = 5; Chunk = 4 }
            let forward = Ais.forward g small 3 2 model x
            Expect.equal forward.LogMarginal.shape [| 9L |] "one estimate per example over chunks of 4, 4, 1"
            Expect.equal forward.LogWeights.shape [| 3L; 9L |] "[K,B]"
            Expect.equal (Ais.reverse g small 3 model x z).EffectiveSampleSize.shape [| 9L |] "reverse, too"
            throwsArgument (fun () -> Ais.forward g { small with Steps = 0 } 3 2 model x |> ignore) "T ≥ 1"
            throwsArgument (fun () -> Ais.forward g small 0 2 model x |> ignore) "K ≥ 1"
            throwsArgument (fun () -> Ais.reverse g small 3 model x (z.narrow(0L, 0L, 5L)) |> ignore) "one z per example"
            throwsArgument
                (fun () -> Ais.forward g { small with Adaptation = { small.Adaptation with TargetAcceptance = 1.5 } } 3 2 model x |> ignore) "target in (0, 1)"
        }
    ]

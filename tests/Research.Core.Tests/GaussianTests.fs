module Research.Core.Tests.GaussianTests

open System
open Expecto
open FsCheck.FSharp
open MathNet.Numerics.Distributions
open TorchSharp
open Research.Core

/// A value from a uniform grid on [lo, hi] (FsCheck shrinks it towards lo).
let private within lo hi = Gen.choose (0, 10000) |> Gen.map (fun i -> lo + (hi - lo) * float i / 10000.0)

/// (μ, log σ²) of a D-dimensional diagonal Gaussian with D in 1..5.
let private gaussianParameters muRange logVarRange =
    gen {
        let! d = Gen.choose (1, 5)
        let! mu = Gen.arrayOfLength d (within -muRange muRange)
        let! logVar = Gen.arrayOfLength d (within (fst logVarRange) (snd logVarRange))
        return mu, logVar
    }

let private f64 (a: float[]) = torch.tensor(a, dtype = torch.float64)
let private f32 (a: float[]) = torch.tensor(a |> Array.map float32)
let private value (t: torch.Tensor) = t.to_type(torch.float64).item<float>()

/// KL(N(μ, diag e^v) ‖ N(0, I)) by the textbook formula in float64.
let private klReference (mu: float[]) (logVar: float[]) =
    Array.map2 (fun m v -> 0.5 * (exp v + m * m - v - 1.0)) mu logVar |> Array.sum

/// Checks a Monte-Carlo mean of `samples` against `truth`, within Accuracy.standardErrors SEs.
let private expectWithinSe (samples: torch.Tensor) (truth: float) (message: string) =
    let n = float samples.shape.[0]
    let mean = value (samples.mean())
    let se = value (samples.std()) / sqrt n
    Expect.isLessThanOrEqual (abs (mean - truth)) (Accuracy.standardErrors * se + 1e-9)
        $"{message}: Monte-Carlo mean {mean} vs closed form {truth} (SE {se})"

let tests =
    testList "Gaussian" [
        testPropertyWithConfig (Accuracy.properties 25) "closed-form KL equals the Monte-Carlo mean of log q − log p"
            (Prop.forAll (Arb.fromGen (Gen.zip (gaussianParameters 2.0 (-3.0, 2.0)) (gaussianParameters 2.0 (-3.0, 2.0))))
                (fun ((mu, logVar), (mu2', logVar2')) ->
                    let d = mu.Length
                    // A second Gaussian of the same dimension for the general KL.
                    let pad (a: float[]) = Array.init d (fun i -> if i < a.Length then a.[i] else 0.5)
                    let mu2, logVar2 = pad mu2', pad logVar2'
                    use g = new torch.Generator(uint64 (d * 7919 + int (1000.0 * Array.sum mu) + 100000))
                    let m, v = f64 mu, f64 logVar
                    let z = Gaussian.sample g 20000 m v
                    let logQ = Gaussian.logDensity m v z
                    expectWithinSe (logQ - Gaussian.logStandardNormal z) (value (Gaussian.klToStandardNormal m v)) "KL(q ‖ N(0,I))"
                    expectWithinSe (logQ - Gaussian.logDensity (f64 mu2) (f64 logVar2) z)
                        (value (Gaussian.kl m v (f64 mu2) (f64 logVar2))) "KL(q ‖ p)"
                    Expect.floatClose Accuracy.double (value (Gaussian.klToStandardNormal m v)) (klReference mu logVar) "the textbook formula"))

        testPropertyWithConfig (Accuracy.properties 200) "KL is non-negative (float32, wide ranges)"
            (Prop.forAll (Arb.fromGen (Gen.zip (gaussianParameters 10.0 (-20.0, 20.0)) (gaussianParameters 10.0 (-20.0, 20.0))))
                (fun ((mu, logVar), (mu2, logVar2)) ->
                    let d = min mu.Length mu2.Length
                    let cut (a: float[]) = f32 a.[.. d - 1]
                    Expect.isGreaterThanOrEqual (value (Gaussian.klToStandardNormal (f32 mu) (f32 logVar))) 0.0 "KL(q ‖ N(0,I)) ≥ 0"
                    Expect.isGreaterThanOrEqual (value (Gaussian.kl (cut mu) (cut logVar) (cut mu2) (cut logVar2))) 0.0 "KL(q ‖ p) ≥ 0"))

        test "KL to N(0,I) is exactly 0 at μ = 0, log σ² = 0" {
            let zero = torch.zeros(7L)
            Expect.equal ((Gaussian.klToStandardNormal zero zero).item<float32>()) 0.0f "exactly zero"
            Expect.equal (Gaussian.klToStandardNormal (torch.zeros(3L, 7L)) (torch.zeros(3L, 7L))).shape [| 3L |] "one KL per row"
        }

        testPropertyWithConfig (Accuracy.properties 100) "KL is additive over dimensions"
            (Prop.forAll (Arb.fromGen (Gen.zip (gaussianParameters 3.0 (-5.0, 5.0)) (gaussianParameters 3.0 (-5.0, 5.0))))
                (fun ((mu1, lv1), (mu2, lv2)) ->
                    let whole = Gaussian.klToStandardNormal (f32 (Array.append mu1 mu2)) (f32 (Array.append lv1 lv2))
                    let parts = Gaussian.klToStandardNormal (f32 mu1) (f32 lv1) + Gaussian.klToStandardNormal (f32 mu2) (f32 lv2)
                    Expect.floatClose Accuracy.single (value whole) (value parts) "KL(joint) = Σ KL(parts)"))

        testPropertyWithConfig (Accuracy.properties 50) "autograd: ∂KL/∂μ = μ and ∂KL/∂log σ² = ½(σ² − 1)"
            (Prop.forAll (Arb.fromGen (gaussianParameters 3.0 (-5.0, 5.0))) (fun (mu, logVar) ->
                let m, v = f64 mu, f64 logVar
                let dMu = Interop.toDoubleArray (Diff.grad (fun m -> Gaussian.klToStandardNormal m v) m)
                let dLogVar = Interop.toDoubleArray (Diff.grad (fun v -> Gaussian.klToStandardNormal m v) v)
                for i in 0 .. mu.Length - 1 do
                    Expect.floatClose Accuracy.double dMu.[i] mu.[i] "∂KL/∂μ"
                    Expect.floatClose Accuracy.double dLogVar.[i] (0.5 * (exp logVar.[i] - 1.0)) "∂KL/∂log σ²"))

        test "KL is finite and accurate in float32 for log σ² = ±30 and ±50" {
            for lv in [ -50.0; -30.0; 30.0; 50.0 ] do
                for mu in [ 0.0; 3.0 ] do
                    let k = value (Gaussian.klToStandardNormal (f32 [| mu |]) (f32 [| lv |]))
                    Expect.isTrue (Double.IsFinite k) $"KL(log σ² = {lv}) is finite"
                    Expect.floatClose Accuracy.single k (klReference [| mu |] [| lv |]) $"KL(μ = {mu}, log σ² = {lv})"
            // The general KL only needs the ratio σ₁²/σ₂² = e^(v₁ − v₂) to be representable.
            for lv1 in [ -50.0; -30.0; 30.0; 50.0 ] do
                for lv2 in [ -50.0; -30.0; 30.0; 50.0 ] do
                    if lv1 - lv2 <= 80.0 then
                        let k = value (Gaussian.kl (f32 [| 1.0 |]) (f32 [| lv1 |]) (f32 [| -1.0 |]) (f32 [| lv2 |]))
                        let expected = 0.5 * (exp (lv1 - lv2) - 1.0 - (lv1 - lv2) + 4.0 * exp -lv2)
                        Expect.floatClose Accuracy.single k expected $"KL(log σ₁² = {lv1} ‖ log σ₂² = {lv2})"
        }

        testPropertyWithConfig (Accuracy.properties 50) "KL(q ‖ q) = 0 and KL(q ‖ N(0,I)) = klToStandardNormal"
            (Prop.forAll (Arb.fromGen (gaussianParameters 5.0 (-10.0, 10.0))) (fun (mu, logVar) ->
                let m, v = f32 mu, f32 logVar
                Expect.equal (value (Gaussian.kl m v m v)) 0.0 "KL(q ‖ q) is exactly 0"
                Expect.floatClose Accuracy.single (value (Gaussian.kl m v (torch.zeros_like(m)) (torch.zeros_like(v))))
                    (value (Gaussian.klToStandardNormal m v)) "KL(q ‖ N(0,I))"))

        test "logDensity matches MathNet's Normal, broadcasting z [S,B,D] against μ [B,D]" {
            use g = new torch.Generator(11UL)
            let mu = torch.randn(4L, 3L, dtype = torch.float64, generator = g)
            let logVar = torch.randn(4L, 3L, dtype = torch.float64, generator = g)
            let z = torch.randn(5L, 4L, 3L, dtype = torch.float64, generator = g) * 2.0
            let actual = Gaussian.logDensity mu logVar z
            let standard = Gaussian.logStandardNormal z
            Expect.sequenceEqual actual.shape [| 5L; 4L |] "summed over the last dimension"
            let at (t: torch.Tensor) (idx: int64[]) = t.[idx |> Array.map (fun i -> torch.TensorIndex.Single i)].item<float>()
            for s in 0L .. 4L do
                for b in 0L .. 3L do
                    let expected, expectedStandard =
                        [ 0L .. 2L ]
                        |> List.map (fun d ->
                            let x = at z [| s; b; d |]
                            Normal.PDFLn(at mu [| b; d |], exp (0.5 * at logVar [| b; d |]), x), Normal.PDFLn(0.0, 1.0, x))
                        |> List.reduce (fun (a, b) (c, d) -> a + c, b + d)
                    Expect.floatClose Accuracy.double (at actual [| s; b |]) expected "log N(z; μ, σ²)"
                    Expect.floatClose Accuracy.double (at standard [| s; b |]) expectedStandard "log N(z; 0, I)"
        }

        test "sample has shape [S; μ.shape], μ's dtype, and is reproducible from the generator" {
            let mu = torch.zeros(2L, 3L, dtype = torch.float64)
            use g1 = new torch.Generator(5UL)
            use g2 = new torch.Generator(5UL)
            let a = Gaussian.sample g1 4 mu mu
            let b = Gaussian.sample g2 4 mu mu
            Expect.sequenceEqual a.shape [| 4L; 2L; 3L |] "shape"
            Expect.equal a.dtype torch.float64 "dtype"
            Expect.equal ((a - b).abs().max().item<float>()) 0.0 "same seed, same samples"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> Gaussian.sample g1 0 mu mu |> ignore) "samples ≥ 1"
        }
    ]

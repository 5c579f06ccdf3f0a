module Research.Core.Tests.HmcTests

open System
open Expecto
open FsCheck.FSharp
open TorchSharp
open Research.Core
open Research.Core.Tests.ReparameterizationTests

let private within lo hi = Gen.choose (0, 10000) |> Gen.map (fun i -> lo + (hi - lo) * float i / 10000.0)

let private float64 (values: float[]) = torch.tensor(values, dtype = torch.float64)

/// log N(x; m, diag s²) per chain, the target of the Gaussian tests.
let private gaussian (m: torch.Tensor) (s: torch.Tensor) = fun (x: torch.Tensor) -> Gaussian.logDensity m (s.log() * 2.0) x

/// Exact samples [C,D] of N(m, diag s²).
let private exact (g: torch.Generator) (chains: int64) (m: torch.Tensor) (s: torch.Tensor) =
    m + s * torch.randn([| chains; m.shape.[0] |], dtype = torch.float64, generator = g)

let tests =
    testList "HMC" [
        testPropertyWithConfig (Accuracy.properties 5) "HMC leaves N(m, diag s²) invariant: from exact samples, 30 transitions keep each dimension's mean and variance"
            (Prop.forAll (Arb.fromGen (Gen.zip3 (within -2.0 2.0) (within 0.3 2.0) (Gen.choose (0, 1000000)))) (fun (shift, scale, seed) ->
                use g = new torch.Generator(uint64 seed)
                let m = float64 [| shift; -0.5 * shift; 1.0 |]
                let s = float64 [| 0.3 * scale; scale; 0.7 |]
                let chains = 4000L
                // ε = 0.8·min s with 6 steps: acceptance well below 1 on the narrowest dimension, so a wrong
                // Metropolis test would show.
                let eps = s.min() * 0.8
                let point, acceptance = Hmc.run g (gaussian m s) eps 6 30 (exact g chains m s)
                let rate = acceptance.mean().item<float> ()
                Expect.isLessThan rate 0.99 $"some proposals are rejected (acceptance {rate:F3})"
                Expect.isGreaterThan rate 0.3 $"the chains move (acceptance {rate:F3})"
                let x = point.Position
                for d in 0L .. 2L do
                    let md, sd = m.[d].item<float> (), s.[d].item<float> ()
                    let mean, se = meanAndSe (x.select(1L, d))
                    Expect.isLessThanOrEqual (abs (mean - md)) (Accuracy.standardErrors * se) $"dimension {d}: mean {mean} vs {md} (SE {se})"
                    let variance, seV = meanAndSe ((x.select(1L, d) - md).square())
                    Expect.isLessThanOrEqual (abs (variance - sd * sd)) (Accuracy.standardErrors * seV) $"dimension {d}: variance {variance} vs {sd * sd} (SE {seV})"))

        test "leapfrog is reversible: L steps, the momentum negated, L steps back return to the start (float64, a non-Gaussian target)" {
            use g = new torch.Generator(11UL)
            // A banana-shaped density on [C,B,D] chains, so that the gradient is not linear.
            let banana (x: torch.Tensor) =
                let a, b = x.select(-1L, 0L), x.select(-1L, 1L)
                -(a.square() * 0.5) - (b - a.square()).square() * 2.0 - x.narrow(-1L, 2L, 1L).square().sum(-1L) * 0.5
            let x0 = torch.randn([| 50L; 4L; 3L |], dtype = torch.float64, generator = g)
            let p0 = torch.randn([| 50L; 4L; 3L |], dtype = torch.float64, generator = g)
            // One step size per example [B].
            let eps = float64 [| 0.01; 0.05; 0.1; 0.02 |]
            let start = Hmc.evaluate banana x0
            let ahead, p1 = Hmc.leapfrog banana eps 25 start p0
            let back, p2 = Hmc.leapfrog banana eps 25 ahead (-p1)
            Expect.isGreaterThan ((ahead.Position - x0).abs().max().item<float> ()) 0.1 "the trajectory goes somewhere"
            Expect.isLessThan ((back.Position - x0).abs().max().item<float> ()) Accuracy.double.absolute "the position returns"
            Expect.isLessThan ((p2 + p0).abs().max().item<float> ()) Accuracy.double.absolute "the momentum returns, negated"
            Expect.isLessThan ((back.LogDensity - start.LogDensity).abs().max().item<float> ()) Accuracy.double.absolute "so does log π"
        }

        test "leapfrog's energy error is O(ε²): over the same trajectory time, halving ε divides the mean |ΔH| by about 4" {
            use g = new torch.Generator(12UL)
            let m, s = float64 [| 1.0; -1.0; 0.0 |], float64 [| 0.5; 1.0; 2.0 |]
            let target = gaussian m s
            let start = Hmc.evaluate target (exact g 2000L m s)
            let p0 = torch.randn([| 2000L; 3L |], dtype = torch.float64, generator = g)
            let energyError (eps: float) (steps: int) =
                let stop, p1 = Hmc.leapfrog target (torch.tensor(eps, dtype = torch.float64)) steps start p0
                (Hmc.hamiltonian stop p1 - Hmc.hamiltonian start p0).abs().mean().item<float> ()
            let coarse, fine = energyError 0.1 20, energyError 0.05 40
            Expect.isGreaterThan coarse 1e-4 "the coarse trajectory has an energy error to speak of"
            Expect.isGreaterThanOrEqual (coarse / fine) 3.0 $"|ΔH| ratio {coarse / fine:F3} (ε = 0.1: {coarse:E3}, ε = 0.05: {fine:E3})"
            Expect.isLessThanOrEqual (coarse / fine) 5.0 $"|ΔH| ratio {coarse / fine:F3}"
        }

        test "step-size adaptation reaches the target acceptance, with one step size per example that follows its scale" {
            use g = new torch.Generator(13UL)
            // Two examples [C,B,D] = [64,2,4]: posteriors of scale 0.05 and 1.
            let scales = float64 [| 0.05; 1.0 |]
            let target (x: torch.Tensor) = -((x / scales.unsqueeze(-1L)).square().sum(-1L) * 0.5)
            let mutable point = Hmc.evaluate target (torch.randn([| 64L; 2L; 4L |], dtype = torch.float64, generator = g) * scales.unsqueeze(-1L))
            let mutable eps = float64 [| 0.3; 0.3 |]
            let late = ResizeArray()
            for i in 1 .. 400 do
                let t = Hmc.transition g target eps 5 point
                point <- t.Point
                eps <- Hmc.adaptStepSize { Hmc.defaultAdaptation with MaxStepSize = 10.0 } eps t.AcceptanceProbability
                if i > 200 then late.Add(t.AcceptanceProbability.mean([| 0L |]))
            let rate = torch.stack(late, 0L).mean([| 0L |])
            for b in 0L .. 1L do
                let r = rate.[b].item<float> ()
                Expect.isGreaterThan r 0.55 $"example {b}: acceptance {r:F3} near 0.65"
                Expect.isLessThan r 0.75 $"example {b}: acceptance {r:F3} near 0.65"
            let ratio = (eps.[1] / eps.[0]).item<float> ()
            Expect.isGreaterThan ratio 10.0 $"the wide example's step size is ~20× the narrow one's: ratio {ratio:F2}"
            Expect.isLessThan ratio 40.0 $"the wide example's step size is ~20× the narrow one's: ratio {ratio:F2}"
        }

        test "the same seed gives the same chains; a log-density of the wrong shape and a step size that does not broadcast are refused" {
            let m, s = float64 [| 0.0; 1.0 |], float64 [| 1.0; 2.0 |]
            let chains (seed: uint64) =
                use g = new torch.Generator(seed)
                let point, _ = Hmc.run g (gaussian m s) (torch.tensor(0.5, dtype = torch.float64)) 3 5 (torch.zeros([| 10L; 2L |], dtype = torch.float64))
                Interop.toDoubleArray point.Position
            Expect.equal (chains 1UL) (chains 1UL) "reproducible"
            Expect.notEqual (chains 1UL) (chains 2UL) "seeded"
            let x = torch.zeros([| 10L; 2L |], dtype = torch.float64)
            Expect.throwsT<ArgumentException> (fun () -> Hmc.evaluate (fun x -> x.sum()) x |> ignore) "one value per chain"
            let start = Hmc.evaluate (gaussian m s) x
            Expect.throwsT<ArgumentException> (fun () -> Hmc.leapfrog (gaussian m s) (float64 [| 0.1; 0.1 |]) 1 start x |> ignore) "[2] does not end [10]"
        }
    ]

module Research.Core.Tests.PcaTests

open System
open Expecto
open MathNet.Numerics.LinearAlgebra
open TorchSharp
open Research.Core

/// Random float32 data [n,P] with correlated columns, an offset, and (optionally) rank ≤ r:
/// x = z A + b with z [n,r] standard normal and A [r,P].
let private randomData (seed: uint64) (n: int64) (p: int64) (rank: int64) =
    use g = new torch.Generator(seed)
    let z = torch.randn(n, rank, generator = g)
    let a = torch.randn(rank, p, generator = g)
    z.matmul(a) + torch.randn(p, generator = g) * 3.0f

/// The shapes of the sweep: tall, square-ish and wide (n − 1 < P) matrices.
let private shapes = [ 1UL, 40L, 6L; 2UL, 25L, 10L; 3UL, 60L, 12L; 4UL, 8L, 15L; 5UL, 100L, 3L ]

/// The centred data as a MathNet matrix (the same float32 values, in float64).
let private centred (data: torch.Tensor) =
    let m = Matrix<float>.Build.DenseOfArray(Interop.toArray2D data |> Array2D.map float)
    let mean = m.ColumnSums() / float m.RowCount
    m - Matrix<float>.Build.DenseOfRowVectors(Array.create m.RowCount mean)

let tests =
    testList "Pca" [
        test "explained variances are the squared singular values of the centred data / (n − 1) (MathNet SVD)" {
            for seed, n, p in shapes do
                let data = randomData seed n p p
                let k = int (min (n - 1L) p)
                let s = (centred data).Svd(true).S
                // float64 data: a float64 covariance, exact to float64 rounding.
                let fit = Pca.fit (data.to_type torch.float64) k
                for j in 0 .. k - 1 do
                    Expect.floatClose Accuracy.double fit.ExplainedVariance.[j] (s.[j] * s.[j] / float (n - 1L)) $"λ_{j} for [{n},{p}]"
                Expect.floatClose Accuracy.double fit.TotalVariance (s.PointwisePower(2.0).Sum() / float (n - 1L)) "total variance"
                // float32 data: a float32 covariance C + E with ‖E‖ of float32 rounding, so by Weyl's inequality
                // every eigenvalue is within ‖E‖ ≤ (float32 tolerance)·λ₀ of the exact one.
                let fit32 = Pca.fit data k
                let bound = Accuracy.single.relative * s.[0] * s.[0] / float (n - 1L)
                for j in 0 .. k - 1 do
                    let exact = s.[j] * s.[j] / float (n - 1L)
                    Expect.isLessThanOrEqual (abs (fit32.ExplainedVariance.[j] - exact)) bound $"float32 λ_{j} for [{n},{p}]"
                Expect.floatClose Accuracy.single fit32.TotalVariance (s.PointwisePower(2.0).Sum() / float (n - 1L)) "float32 total variance"
        }

        test "components span the SVD's right singular vectors (|cos| = 1 each, principal angles 0)" {
            for seed, n, p in shapes do
                let data = randomData seed n p p
                let k = max 1 (int (min (n - 1L) p) - 1)
                let fit = Pca.fit data k
                let vt = (centred data).Svd(true).VT
                let c = Matrix<float>.Build.DenseOfArray(Interop.toArray2D fit.Components |> Array2D.map float)
                for j in 0 .. k - 1 do
                    Expect.floatClose Accuracy.single (abs (c.Row(j).DotProduct(vt.Row(j)))) 1.0 $"|⟨c_{j}, v_{j}⟩| for [{n},{p}]"
                // The cosines of the principal angles between the subspaces are the singular values of C Vₖᵀ.
                let cosines = (c * vt.SubMatrix(0, k, 0, int p).Transpose()).Svd(false).S
                for cosine in cosines do
                    Expect.floatClose Accuracy.single cosine 1.0 "principal angle 0"
        }

        test "components are orthonormal rows with their largest entry positive" {
            for seed, n, p in shapes do
                let fit = Pca.fit (randomData seed n p p) (int (min (n - 1L) p))
                let c = fit.Components
                let gram = c.matmul(c.T) - torch.eye(c.shape.[0])
                Expect.isLessThanOrEqual (gram.abs().max().item<float32>() |> float) Accuracy.single.absolute "C Cᵀ = I"
                let rows = Interop.toArray2D c
                for i in 0 .. Array2D.length1 rows - 1 do
                    Expect.isGreaterThan (rows.[i, *] |> Array.maxBy abs) 0.0f "sign convention"
                Expect.equal c.dtype torch.float32 "float32 components"
                Expect.isTrue (fit.ExplainedVariance |> Array.pairwise |> Array.forall (fun (a, b) -> a >= b)) "descending variance"
        }

        test "ratios sum to at most 1, and to 1 when k is the rank" {
            for seed, n, p in shapes do
                let rank = max 1L (min (n - 1L) p / 2L)
                let data = randomData seed n p rank
                // float64 data: the float32 values are rank r up to rounding, and the rest of the spectrum is
                // ~1e-14 of it. float32 data: the float32 covariance adds eigenvalues of float32 rounding.
                for input, accuracy in [ data.to_type torch.float64, Accuracy.double; data, Accuracy.single ] do
                    for k in 1 .. int (min (n - 1L) p) do
                        let total = Array.sum (Pca.fit input k).ExplainedVarianceRatio
                        Expect.isLessThanOrEqual total (1.0 + 1e-12) $"Σ ratios ≤ 1 (k = {k})"
                        if int64 k >= rank then
                            Expect.floatClose accuracy total 1.0 $"Σ ratios = 1 at k = {k} ≥ rank {rank} ({input.dtype})"
                        else
                            Expect.isLessThan total (1.0 - 1e-4) $"Σ ratios < 1 below the rank (k = {k}, {input.dtype})"
        }

        test "reconstruction error on the training data is Σ discarded λ·(n − 1)/(n·P) (Eckart–Young)" {
            for seed, n, p in shapes do
                let data = randomData seed n p p
                let s = (centred data).Svd(true).S
                for k in 1 .. int (min (n - 1L) p) do
                    let discarded = Seq.sum (seq { for j in k .. s.Count - 1 -> s.[j] * s.[j] / float (n - 1L) })
                    let expected = discarded * float (n - 1L) / float (n * p)
                    let actual = Pca.reconstructionError (Pca.fit data k) data
                    Expect.isLessThanOrEqual (abs (actual - expected)) (Accuracy.single.relative * (s.[0] * s.[0] / float (n * p)))
                        $"MSE at k = {k} for [{n},{p}]: {actual} vs {expected}"
        }

        test "scores are uncorrelated with variances λ_j, and the full transform round-trips" {
            let data = randomData 6UL 50L 5L 5L
            let fit = Pca.fit data 5
            let z = Pca.transform fit data
            Expect.sequenceEqual z.shape [| 50L; 5L |] "[n,k]"
            let zc = z.to_type(torch.float64)
            let covariance = zc.T.matmul(zc) / 49.0     // scores are centred already
            for i in 0 .. 4 do
                for j in 0 .. 4 do
                    let expected = if i = j then fit.ExplainedVariance.[i] else 0.0
                    Expect.isLessThanOrEqual (abs (covariance.[int64 i, int64 j].item<float>() - expected)) (Accuracy.reduced.relative * fit.ExplainedVariance.[0]) $"cov(z)[{i},{j}]"
            let back = Pca.inverseTransform fit z
            Expect.isLessThanOrEqual ((back - data).abs().max().item<float32>() |> float) (Accuracy.reduced.relative * 10.0 * (data.abs().max().item<float32>() |> float)) "x = inverse(transform x)"
        }

        test "invalid arguments are rejected" {
            let data = randomData 7UL 5L 8L 8L
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> Pca.fit data 0 |> ignore) "k ≥ 1"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> Pca.fit data 5 |> ignore) "k ≤ n − 1"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> Pca.fit (randomData 7UL 20L 3L 3L) 4 |> ignore) "k ≤ P"
            Expect.throwsT<ArgumentException> (fun () -> Pca.fit (torch.zeros(1L, 3L)) 1 |> ignore) "n ≥ 2"
        }
    ]

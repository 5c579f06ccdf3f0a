module Research.Core.Tests.ProbabilisticPcaTests

open System
open Expecto
open MathNet.Numerics.LinearAlgebra
open MathNet.Numerics.Distributions
open TorchSharp
open Research.Core
open Research.Core.Tests.ReparameterizationTests

/// float32 data [n,P] drawn from a probabilistic PCA with k = 2 latent dimensions and noise σ = 0.5.
let private ppcaData (seed: uint64) (n: int64) (p: int64) =
    use g = new torch.Generator(seed)
    let w = torch.randn(p, 2L, generator = g) * 2.0f
    let mu = torch.randn(p, generator = g)
    torch.randn(n, 2L, generator = g).matmul(w.T) + mu + torch.randn(n, p, generator = g) * 0.5f

let private toMatrix (t: torch.Tensor) =
    let t = if t.dim () = 1L then t.unsqueeze(1L) else t
    Matrix<float>.Build.DenseOfArray(Interop.toArray2D t |> Array2D.map float)

let private toMatrix64 (t: torch.Tensor) =
    let t = (if t.dim () = 1L then t.unsqueeze(1L) else t).to_type(torch.float64).contiguous()
    let rows, cols = int t.shape.[0], int t.shape.[1]
    let flat = t.data<float>().ToArray()
    Matrix<float>.Build.Dense(rows, cols, fun i j -> flat.[i * cols + j])

/// Rows minus a row vector (a [P,1] column matrix).
let private minusRow (rows: Matrix<float>) (row: Matrix<float>) =
    rows - Matrix<float>.Build.DenseOfRowVectors(Array.create rows.RowCount (row.Column 0))

let private data = lazy (ppcaData 41UL 400L 8L)
let private model = lazy (ProbabilisticPca.fit data.Value 2)

let tests =
    testList "ProbabilisticPca" [
        test "logLikelihood equals MathNet's normal density and a dense Cholesky computation" {
            let m = model.Value
            let x = data.Value.narrow(0L, 0L, 20L)
            let actual = Interop.toDoubleArray (ProbabilisticPca.logLikelihood m x)
            let w = toMatrix64 m.W
            let c = w * w.Transpose() + Matrix<float>.Build.DenseIdentity(8) * m.Sigma2
            let mean = toMatrix64 m.Mean
            let chol = c.Cholesky()
            let xs = toMatrix x
            for b in 0 .. 19 do
                let e = xs.Row(b).ToColumnMatrix() - mean
                // Dense: −½ [P log 2π + log|C| + eᵀ C⁻¹ e].
                let dense = -0.5 * (8.0 * log (2.0 * Math.PI) + chol.DeterminantLn + (e.Transpose() * chol.Solve(e)).[0, 0])
                Expect.floatClose Accuracy.double actual.[b] dense $"dense log N, row {b}"
                // MathNet: a P×1 matrix normal with row covariance C and column covariance 1.
                let mathNet = log (MatrixNormal(mean, c, Matrix<float>.Build.DenseIdentity(1)).Density(xs.Row(b).ToColumnMatrix()))
                Expect.floatClose Accuracy.double actual.[b] mathNet $"MathNet MatrixNormal, row {b}"
        }

        test "the fit is the maximum of the likelihood: σ² is the mean discarded eigenvalue, ∇ log p = 0" {
            let m = model.Value
            let x = data.Value
            let n = float x.shape.[0]
            let c = toMatrix x
            let s = (minusRow c ((c.ColumnSums() / n).ToColumnMatrix())).Svd(false).S
            let discarded = Seq.average (seq { for j in 2 .. 7 -> s.[j] * s.[j] / n })
            Expect.floatClose Accuracy.double m.Sigma2 discarded "σ² = mean of the discarded ML eigenvalues"
            // The total log-likelihood is stationary in W and in log σ² at the fit.
            let total (w: torch.Tensor) (logSigma2: float) =
                ProbabilisticPca.logLikelihood { m with W = w; Sigma2 = exp logSigma2 } x
            let dW = Diff.grad (fun w -> (total w (log m.Sigma2)).sum()) m.W
            let scale = m.W.abs().max().item<float>() * n
            Expect.isLessThanOrEqual (dW.abs().max().item<float>() / scale) 1e-10 "∂ log p/∂W = 0"
            // σ² enters as a float, so probe it by central differences.
            let at (v: float) = (total m.W v).sum().item<float>()
            let h = 1e-4
            let lv = log m.Sigma2
            Expect.isLessThanOrEqual (abs ((at (lv + h) - at (lv - h)) / (2.0 * h))) (1e-6 * n) "∂ log p/∂log σ² = 0"
            Expect.isLessThan (at (lv + 0.1)) (at lv) "σ² · e^0.1 is worse"
            Expect.isLessThan (at (lv - 0.1)) (at lv) "σ² · e^−0.1 is worse"
            // W is identified only up to a rotation: W R has the same likelihood.
            let angle = 0.7
            let r = torch.tensor(array2D [ [ cos angle; -sin angle ]; [ sin angle; cos angle ] ], dtype = torch.float64)
            Expect.floatClose Accuracy.double ((total (m.W.matmul(r)) lv).sum().item<float>()) (at lv) "rotation invariance"
        }

        test "the posterior is N(M⁻¹Wᵀ(x − μ), σ²M⁻¹) with diagonal M = WᵀW + σ²I" {
            let m = model.Value
            let x = data.Value.narrow(0L, 0L, 10L)
            let mean, logVar = ProbabilisticPca.posterior m x
            Expect.sequenceEqual mean.shape [| 10L; 2L |] "mean [B,k]"
            Expect.sequenceEqual logVar.shape [| 10L; 2L |] "log-variance [B,k]"
            let w = toMatrix64 m.W
            let inner = w.Transpose() * w + Matrix<float>.Build.DenseIdentity(2) * m.Sigma2
            Expect.isLessThanOrEqual (abs inner.[0, 1]) (1e-12 * inner.[0, 0]) "WᵀW is diagonal for the fitted W"
            let e = minusRow (toMatrix x) (toMatrix64 m.Mean)
            let expectedMean = (inner.Inverse() * w.Transpose() * e.Transpose()).Transpose()
            let covariance = inner.Inverse() * m.Sigma2
            let actualMean, actualLogVar = toMatrix64 mean, toMatrix64 logVar
            for b in 0 .. 9 do
                for j in 0 .. 1 do
                    Expect.floatClose Accuracy.double actualMean.[b, j] expectedMean.[b, j] "posterior mean"
                    Expect.floatClose Accuracy.double actualLogVar.[b, j] (log covariance.[j, j]) "posterior log-variance"
        }

        test "the ELBO at the exact posterior equals log p(x) (tight bound)" {
            let m = model.Value
            let lvm = ProbabilisticPca.asLatentVariableModel m
            let x = data.Value.narrow(0L, 0L, 200L)
            let logP = ProbabilisticPca.logLikelihood m x
            use g = new torch.Generator(42UL)
            // SGVB A: log p(x,z) − log q(z|x) = log p(x) for every z at the true posterior (zero variance).
            let a = Estimators.elbo (Estimators.sgvbA g 1 lvm x)
            Array.iter2 (fun u v -> Expect.floatClose Accuracy.double u v "SGVB A, one sample") (Interop.toDoubleArray a) (Interop.toDoubleArray logP)
            // SGVB B: the closed-form KL plus the analytic E_q[log p(x|z)] is exactly log p(x)...
            let terms = Estimators.sgvbB g 100 lvm x
            let mean, logVar = ProbabilisticPca.posterior m x
            let reconstruction =
                Likelihood.gaussian (mean.matmul(m.W.T) + m.Mean) (torch.tensor(log m.Sigma2, dtype = torch.float64)) (x.to_type(torch.float64))
                - (logVar.exp() * (m.W * m.W).sum(0L)).sum(-1L) / (2.0 * m.Sigma2)   // tr(W S Wᵀ)/2σ²
            Array.iter2 (fun u v -> Expect.floatClose Accuracy.double u v "closed-form ELBO")
                (Interop.toDoubleArray (reconstruction - terms.Kl)) (Interop.toDoubleArray logP)
            // ...and its sampled reconstruction term is unbiased for it.
            let bias, se = meanAndSe (Estimators.elbo terms - logP)
            Expect.isLessThanOrEqual (abs bias) (Accuracy.standardErrors * se) $"SGVB B: mean(ELBO − log p) = {bias}, SE {se}"
        }

        test "with a worse q the importance-weighted bound is below log p(x) and approaches it (K = 1, 10, 1000)" {
            let m = model.Value
            let exact = ProbabilisticPca.asLatentVariableModel m
            // q with 4× the posterior variance: a valid but loose proposal.
            let loose = { exact with Encode = fun x -> let mean, logVar = exact.Encode x in mean, logVar + log 4.0 }
            // Every example 5 times over: independent replicates shrink the Monte-Carlo error of the gaps.
            let x = data.Value.repeat(5L, 1L)
            let logP = ProbabilisticPca.logLikelihood m x
            use g = new torch.Generator(43UL)
            use _ = torch.no_grad ()
            let gap k = meanAndSe (logP - Estimators.importanceWeighted g k 100 loose x)
            let gap1, se1 = gap 1
            let gap10, se10 = gap 10
            let gap1000, se1000 = gap 1000
            // K = 1: the gap is KL(q ‖ p(z|x)) = k·½(4 − 1 − log 4) per example.
            Expect.isLessThanOrEqual (abs (gap1 - 2.0 * 0.5 * (3.0 - log 4.0))) (Accuracy.standardErrors * se1) $"gap at K = 1: {gap1} (SE {se1})"
            Expect.isGreaterThan gap10 (Accuracy.standardErrors * se10) $"gap at K = 10 is positive: {gap10} (SE {se10})"
            Expect.isLessThan gap10 gap1 "K = 10 is tighter than K = 1"
            Expect.isLessThan gap1000 gap10 "K = 1000 is tighter than K = 10"
            Expect.isGreaterThanOrEqual gap1000 (-Accuracy.standardErrors * se1000) $"K = 1000 is not above log p(x): {gap1000} (SE {se1000})"
            Expect.isLessThan gap1000 0.01 $"K = 1000 is within 0.01 nats of log p(x): {gap1000}"
            // With the exact posterior every importance weight is p(x): the bound is log p(x) for any K.
            let tight = Estimators.importanceWeighted g 10 3 exact x
            Array.iter2 (fun u v -> Expect.floatClose Accuracy.double u v "IW at the true posterior") (Interop.toDoubleArray tight) (Interop.toDoubleArray logP)
        }

        test "invalid latent dimensions are rejected" {
            let x = data.Value
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> ProbabilisticPca.fit x 0 |> ignore) "k ≥ 1"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> ProbabilisticPca.fit x 8 |> ignore) "k < P"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> ProbabilisticPca.fit (x.narrow(0L, 0L, 4L)) 3 |> ignore) "k < n − 1"
        }
    ]

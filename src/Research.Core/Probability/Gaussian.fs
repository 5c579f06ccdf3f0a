/// Diagonal Gaussians N(μ, diag σ²), parameterised by μ and log σ² as in Kingma & Welling (2013),
/// Appendix B/C. Every density is summed over the last dimension (the latent/feature axis) and
/// broadcasts over the leading ones, so z [S,B,D] can be scored against μ [B,D].
module Research.Core.Gaussian

open System
open TorchSharp
open Research.Core.Interop
open Research.Core.Scalars.Operators

/// log 2π, the normalising constant of every univariate Gaussian.
let private log2Pi = Scalars.ofFloat (Math.Log(2.0 * Math.PI))

/// The reparameterisation z = μ + σ ⊙ ε with σ = exp(½ log σ²) (the paper's eq. 10 for a diagonal
/// Gaussian). The noise ε is an input, so gradients flow to μ and log σ² but not to the noise.
let sampleWith (eps: Tensor) (mu: Tensor) (logVar: Tensor) : Tensor =
    mu +. torch.exp(logVar * Scalars.half) * eps

/// Draws `samples` reparameterised samples z ~ N(μ, diag σ²), shape [samples; μ.shape]. The noise
/// ε ~ N(0, I) comes from `generator` (one draw of the full shape) on μ's device and dtype, so the
/// result is reproducible and differentiable in μ and log σ².
let sample (generator: torch.Generator) (samples: int) (mu: Tensor) (logVar: Tensor) : Tensor =
    if samples < 1 then
        raise (ArgumentOutOfRangeException("samples", samples, "At least one sample is required."))
    let shape = Array.append [| int64 samples |] mu.shape
    use eps = torch.randn(ReadOnlySpan<int64>(shape), dtype = mu.dtype, device = mu.device, generator = generator)
    sampleWith eps mu logVar

/// log N(z; μ, diag σ²) = −½ Σ_d [log 2π + log σ²_d + (z_d − μ_d)² / σ²_d], summed over the last
/// dimension. Dividing by σ² is written as multiplying by exp(−log σ²) so no σ² is formed.
let logDensity (mu: Tensor) (logVar: Tensor) (z: Tensor) : Tensor =
    let d = z - mu
    ((d * d * torch.exp(-logVar) +. logVar |> plus log2Pi) * Scalars.minusHalf).sum(-1L)

/// log N(z; 0, I), summed over the last dimension: the prior p(z) of the paper's VAE.
let logStandardNormal (z: Tensor) : Tensor =
    (plus log2Pi (z * z) * Scalars.minusHalf).sum(-1L)

/// KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_d (σ²_d + μ²_d − log σ²_d − 1), the closed form of the paper's
/// Appendix B, summed over the last dimension. σ² − 1 − log σ² is computed as expm1(log σ²) − log σ²,
/// which is exactly 0 at log σ² = 0 and keeps its precision near there (no 1 + small − 1).
let klToStandardNormal (mu: Tensor) (logVar: Tensor) : Tensor =
    ((torch.expm1(logVar) - logVar +. mu * mu) * Scalars.half).sum(-1L)

/// KL(N(μ₁, diag σ₁²) ‖ N(μ₂, diag σ₂²)) = ½ Σ_d [σ₁²/σ₂² − 1 − log(σ₁²/σ₂²) + (μ₁ − μ₂)²/σ₂²],
/// summed over the last dimension. The variance ratio is exp(log σ₁² − log σ₂²), never a quotient
/// of two exponentials that could overflow separately; expm1 makes KL(q ‖ q) exactly 0.
let kl (mu1: Tensor) (logVar1: Tensor) (mu2: Tensor) (logVar2: Tensor) : Tensor =
    let r = logVar1 - logVar2
    let d = mu1 - mu2
    ((torch.expm1(r) - r +. d * d * torch.exp(-logVar2)) * Scalars.half).sum(-1L)

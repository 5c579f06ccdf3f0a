/// Monte-Carlo estimators of the evidence lower bound (Kingma & Welling 2013, §2.3–2.4) and the
/// importance-weighted bound (Burda et al. 2015) for a latent-variable model with Gaussian q(z|x)
/// and prior p(z) = N(0, I).
module Research.Core.Estimators

open System
open TorchSharp
open Research.Core.Interop
open Research.Core.Scalars.Operators

/// q(z|x) and log p(x|z) as tensor functions.
type LatentVariableModel =
    { /// x [B,P] -> (μ, log σ²) of q(z|x), each [B,D].
      Encode: Tensor -> Tensor * Tensor
      /// z [S,B,D] -> x [B,P] -> log p(x|z) [S,B].
      LogLikelihood: Tensor -> Tensor -> Tensor }

/// Per-example terms of the ELBO, each [B]: ELBO = Reconstruction - Kl.
type ElboTerms =
    { /// E_q[log p(x|z)], estimated by the mean over the L samples.
      Reconstruction: Tensor
      /// KL(q(z|x) ‖ p(z)), sampled (SGVB A) or in closed form (SGVB B).
      Kl: Tensor }

let private requirePositive (name: string) (value: int) =
    if value < 1 then raise (ArgumentOutOfRangeException(name, value, $"{name} must be at least 1."))

/// The SGVB estimator A (the paper's eq. 6): with z_l = μ + σ ⊙ ε_l, l = 1..L,
/// Reconstruction = (1/L) Σ_l log p(x|z_l) and Kl = (1/L) Σ_l [log q(z_l|x) − log p(z_l)].
/// Both terms are sampled; their difference is the generic Monte-Carlo ELBO. Differentiable in the
/// encoder and decoder parameters; the noise comes from `generator`.
let sgvbA (generator: torch.Generator) (samples: int) (model: LatentVariableModel) (x: Tensor) : ElboTerms =
    requirePositive "samples" samples
    let mu, logVar = model.Encode x
    let z = Gaussian.sample generator samples mu logVar
    let logQ = Gaussian.logDensity mu logVar z
    let logPrior = Gaussian.logStandardNormal z
    { Reconstruction = (model.LogLikelihood z x).mean([| 0L |])
      Kl = (logQ - logPrior).mean([| 0L |]) }

/// The SGVB estimator B (the paper's eq. 7): the KL term in closed form (Appendix B), only the
/// reconstruction term sampled, Reconstruction = (1/L) Σ_l log p(x|z_l). Lower variance than A.
let sgvbB (generator: torch.Generator) (samples: int) (model: LatentVariableModel) (x: Tensor) : ElboTerms =
    requirePositive "samples" samples
    let mu, logVar = model.Encode x
    let z = Gaussian.sample generator samples mu logVar
    { Reconstruction = (model.LogLikelihood z x).mean([| 0L |])
      Kl = Gaussian.klToStandardNormal mu logVar }

/// The per-example ELBO estimate [B]: Reconstruction − Kl.
let elbo (terms: ElboTerms) : Tensor = terms.Reconstruction - terms.Kl

/// The importance-weighted bound log (1/K) Σ_k p(x, z_k) / q(z_k|x), z_k ~ q(z|x), per example [B].
/// The K samples are processed `chunk` at a time, so the decoder sees at most chunk·B·P values at
/// once; only the [K,B] log-weights are kept and combined with log-sum-exp. Each z_k is drawn by its
/// own call on `generator`, so the result does not depend on `chunk`. K = 1 is an unbiased ELBO
/// estimate; the bound increases towards log p(x) as K grows.
let rec importanceWeighted (generator: torch.Generator) (samples: int) (chunk: int) (model: LatentVariableModel) (x: Tensor) : Tensor =
    let bound, ess = importanceWeightedWithEss generator samples chunk model x
    ess.Dispose()
    bound

/// importanceWeighted and, per example [B], the effective sample size of its importance weights,
/// (Σ_k w_k)² / Σ_k w_k² = exp(2 logsumexp(log w) − logsumexp(2 log w)), between 1 (one weight dominates:
/// the estimate cannot be trusted) and K (all weights equal).
and importanceWeightedWithEss (generator: torch.Generator) (samples: int) (chunk: int) (model: LatentVariableModel) (x: Tensor) : Tensor * Tensor =
    requirePositive "samples" samples
    requirePositive "chunk" chunk
    let mu, logVar = model.Encode x
    let logWeights =
        [| for start in 0 .. chunk .. samples - 1 do
               let count = min chunk (samples - start)
               // Free each chunk's [count,B,P] temporaries now rather than at the next GC (autograd
               // keeps what it needs by reference); only the [count,B] log-weights leave the scope.
               use scope = torch.NewDisposeScope()
               // One draw per sample keeps the noise stream identical for every chunk size.
               let z = torch.cat([| for _ in 1 .. count -> Gaussian.sample generator 1 mu logVar |], 0L)
               // log w = log p(x|z) + log p(z) − log q(z|x), shape [count,B].
               let logW = model.LogLikelihood z x +. Gaussian.logStandardNormal z - Gaussian.logDensity mu logVar z
               yield scope.MoveToOuter(logW) |]
    use all = torch.cat(logWeights, 0L)
    use total = all.logsumexp(0L)
    use squares = (all * Scalars.two).logsumexp(0L)
    use logK = Scalars.ofFloat (Math.Log(float samples))
    let ess = (total.detach() * Scalars.two - squares.detach()).exp()
    total - logK, ess

/// Burda et al.'s IWAE training bound, per example [B]: log (1/K) Σ_k w_k with w_k = p(x, z_k) / q(z_k|x) and
/// the K samples z_k ~ q(z|x) reparameterised in one draw [K,B,D] (differentiable in the encoder and decoder;
/// its gradient is the IWAE gradient). K = 1 is exactly SGVB A with L = 1 on the same noise; the bound rises
/// towards log p(x) with K. importanceWeighted is the same bound, chunked for evaluation.
let iwae (generator: torch.Generator) (samples: int) (model: LatentVariableModel) (x: Tensor) : Tensor =
    requirePositive "samples" samples
    let mu, logVar = model.Encode x
    let z = Gaussian.sample generator samples mu logVar
    let logW = model.LogLikelihood z x +. Gaussian.logStandardNormal z - Gaussian.logDensity mu logVar z
    use logK = Scalars.ofFloat (Math.Log(float samples))
    logW.logsumexp(0L) - logK

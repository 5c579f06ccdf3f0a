/// Decoder likelihoods log p(x|z) of the paper's Appendix C, summed over the last (pixel) dimension
/// and broadcasting decoder outputs [S,B,P] against data [B,P].
module Research.Core.Likelihood

open TorchSharp
open Research.Core.Interop

/// Bernoulli log-likelihood from logits ℓ: Σ_p [x_p log σ(ℓ_p) + (1 − x_p) log(1 − σ(ℓ_p))], which is
/// Σ_p [x_p ℓ_p − softplus(ℓ_p)], the negative of binary cross-entropy with logits. libtorch's fused
/// BCE-with-logits kernel computes it as max(ℓ, 0) − xℓ + log(1 + e^−|ℓ|) in one pass (and one in
/// backward): it never takes log 0, so it stays finite for saturated logits, and it accepts x in [0, 1].
let bernoulliLogits (logits: Tensor) (x: Tensor) : Tensor =
    use target = x.expand_as logits
    use bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, null, torch.nn.Reduction.None, null)
    -(bce.sum(-1L))

/// Gaussian log-likelihood Σ_p log N(x_p; mean_p, exp logVar_p), the decoder of the paper's
/// Appendix C.2. logVar may be a scalar tensor (shared noise variance, as in probabilistic PCA).
let gaussian (mean: Tensor) (logVar: Tensor) (x: Tensor) : Tensor =
    Gaussian.logDensity mean logVar x

/// Decoder likelihoods log p(x|z) of the paper's Appendix C, summed over the last (pixel) dimension
/// and broadcasting decoder outputs [S,B,P] against data [B,P].
module Research.Core.Likelihood

open TorchSharp
open Research.Core.Interop

/// Bernoulli log-likelihood from logits ℓ: Σ_p [x_p log σ(ℓ_p) + (1 − x_p) log(1 − σ(ℓ_p))], written
/// as Σ_p [x_p ℓ_p − softplus(ℓ_p)] (the negative of binary cross-entropy with logits). This form
/// never takes log 0, so it stays finite for saturated logits, and it accepts x in [0, 1]. (libtorch's
/// fused BCE-with-logits kernel was tried: a few percent faster in training, but over the chunks of the
/// importance-weighted bound it left glibc's heap fragmented, 2.8 GB peak against 0.8 GB.)
let bernoulliLogits (logits: Tensor) (x: Tensor) : Tensor =
    (x * logits - torch.nn.functional.softplus(logits)).sum(-1L)

/// Gaussian log-likelihood Σ_p log N(x_p; mean_p, exp logVar_p), the decoder of the paper's
/// Appendix C.2. logVar may be a scalar tensor (shared noise variance, as in probabilistic PCA).
let gaussian (mean: Tensor) (logVar: Tensor) (x: Tensor) : Tensor =
    Gaussian.logDensity mean logVar x

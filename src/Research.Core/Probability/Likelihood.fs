/// Decoder likelihoods log p(x|z) of the paper's Appendix C, summed over the last (pixel) dimension
/// and broadcasting decoder outputs [S,B,P] against data [B,P].
module Research.Core.Likelihood

open System
open System.Reflection
open TorchSharp
open Research.Core.Interop

/// softplus(ℓ) = log(1 + e^ℓ) as torch.nn.functional.softplus computes it (β = 1, threshold 20), through the
/// overload of TorchSharp 0.107 that takes β and the threshold as Scalars (private there), with both rooted:
/// the public one makes them as temporaries that another thread's garbage collection can free during the call
/// (see Scalars). Resolved once; a TorchSharp without it is a clear error at the first use, not a silent race.
let private softplusWithScalars =
    lazy
        (let m = typeof<Tensor>.GetMethod("softplus1", BindingFlags.Instance ||| BindingFlags.NonPublic, null, [| typeof<Scalar>; typeof<Scalar> |], null)
         if isNull m then
             raise (NotSupportedException("This TorchSharp has no Tensor.softplus1(Scalar, Scalar), which Research.Core needs for softplus with rooted Scalars (TorchSharp 0.107 has it)."))
         Delegate.CreateDelegate(typeof<Func<Tensor, Scalar, Scalar, Tensor>>, m) :?> Func<Tensor, Scalar, Scalar, Tensor>)

let private threshold = Scalars.ofFloat 20.0

/// softplus with TorchSharp's defaults (β = 1, threshold 20) and rooted Scalars.
let internal softplus (logits: Tensor) = softplusWithScalars.Force().Invoke(logits, Scalars.one, threshold)

/// Bernoulli log-likelihood from logits ℓ: Σ_p [x_p log σ(ℓ_p) + (1 − x_p) log(1 − σ(ℓ_p))], written
/// as Σ_p [x_p ℓ_p − softplus(ℓ_p)] (the negative of binary cross-entropy with logits). This form
/// never takes log 0, so it stays finite for saturated logits, and it accepts x in [0, 1]. (libtorch's
/// fused BCE-with-logits kernel was tried: a few percent faster in training, but over the chunks of the
/// importance-weighted bound it left glibc's heap fragmented, 2.8 GB peak against 0.8 GB.)
let bernoulliLogits (logits: Tensor) (x: Tensor) : Tensor =
    (x * logits - softplus logits).sum(-1L)

/// Gaussian log-likelihood Σ_p log N(x_p; mean_p, exp logVar_p), the decoder of the paper's
/// Appendix C.2. logVar may be a scalar tensor (shared noise variance, as in probabilistic PCA).
let gaussian (mean: Tensor) (logVar: Tensor) (x: Tensor) : Tensor =
    Gaussian.logDensity mean logVar x

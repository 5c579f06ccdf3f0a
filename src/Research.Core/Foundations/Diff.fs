/// Functional differentiation in the style of DiffSharp (grad, jacobian, hessian as higher-order
/// functions), built on TorchSharp's reverse-mode autograd. Each call differentiates at a detached
/// copy of the input, so the caller's tensor is never mutated, and returns detached results. It
/// works inside torch.no_grad() too: gradient recording is switched on locally.
module Research.Core.Diff

open System
open TorchSharp
open Research.Core.Interop

/// A fresh leaf with the value of x that records operations, leaving x itself untouched.
let private leaf (x: Tensor) = x.detach().clone().requires_grad_(true)

/// ∂output/∂input, or zeros when output does not depend on input (autograd leaves it undefined).
let private gradientOf (output: Tensor) (input: Tensor) (createGraph: bool) : Tensor =
    if not output.requires_grad then torch.zeros_like(input)
    else
        let g = torch.autograd.grad([| output |], [| input |], retain_graph = true, create_graph = createGraph, allow_unused = true).[0]
        if isNull g || g.Handle = IntPtr.Zero then torch.zeros_like(input) else g

let private requireScalar (y: Tensor) =
    if y.numel () <> 1L then
        invalidArg "f" $"The function must return a single value, got shape %A{y.shape}."

let private requireVector (x: Tensor) =
    if x.dim () <> 1L then invalidArg "x" $"Expected a 1-D input, got shape %A{x.shape}."

/// The value f(x) and the gradient ∇f(x) (same shape as x) of a scalar-valued f, both detached.
let fgrad (f: Tensor -> Tensor) (x: Tensor) : Tensor * Tensor =
    use _ = torch.enable_grad true
    let x' = leaf x
    let y = f x'
    requireScalar y
    y.detach(), (gradientOf (y.reshape([||])) x' false).detach()

/// The gradient ∇f(x) of a scalar-valued f, same shape as x.
let grad (f: Tensor -> Tensor) (x: Tensor) : Tensor = snd (fgrad f x)

/// The directional derivative ∇f(x) · v of a scalar-valued f along v (same shape as x), a scalar tensor.
let gradv (f: Tensor -> Tensor) (x: Tensor) (v: Tensor) : Tensor =
    if v.shape <> x.shape then invalidArg "v" $"The direction has shape %A{v.shape}, the point %A{x.shape}."
    (grad f x * v).sum()

/// The Jacobian J_ij = ∂f_i/∂x_j, shape [m,n], of f: Rⁿ → Rᵐ at a 1-D x (a scalar output counts as
/// m = 1). One reverse pass per output component.
let jacobian (f: Tensor -> Tensor) (x: Tensor) : Tensor =
    requireVector x
    use _ = torch.enable_grad true
    let x' = leaf x
    let y = (f x').reshape([| -1L |])
    torch.stack([| for i in 0L .. y.shape.[0] - 1L -> gradientOf y.[i] x' false |], 0L).detach()

/// The Hessian H_ij = ∂²f/∂x_i∂x_j, shape [n,n], of a scalar-valued f at a 1-D x: the Jacobian of
/// the gradient, whose graph is kept (create_graph) so it can be differentiated again.
let hessian (f: Tensor -> Tensor) (x: Tensor) : Tensor =
    requireVector x
    use _ = torch.enable_grad true
    let x' = leaf x
    let y = f x'
    requireScalar y
    let g = gradientOf (y.reshape([||])) x' true
    torch.stack([| for i in 0L .. x.shape.[0] - 1L -> gradientOf g.[i] x' false |], 0L).detach()

/// Comparing linear subspaces: principal angles (Björck & Golub 1973).
module Research.Core.Subspace

open TorchSharp

type Tensor = torch.Tensor

/// The principal angles, in degrees and ascending, between the row spaces of `a` [k1, P] and `b` [k2, P]:
/// the arccosines of the singular values of Qaᵀ Qb for orthonormal bases Qa, Qb. Computed in float64.
let principalAngles (a: Tensor) (b: Tensor) : float[] =
    use _ = torch.no_grad ()
    use scope = torch.NewDisposeScope()
    let basis (m: Tensor) = let struct (q, _) = torch.linalg.qr(m.detach().cpu().to_type(torch.ScalarType.Float64).t()) in q
    let s = torch.linalg.svdvals(basis(a).t().matmul(basis b)).clamp(Scalars.minusOne, Scalars.one)
    Interop.toDoubleArray s |> Array.map (fun c -> acos c * 180.0 / System.Math.PI) |> Array.sort

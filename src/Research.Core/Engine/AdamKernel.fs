/// Adam's update as one pass over contiguous float32 CPU memory. Expressed as tensor operations the update
/// reads and writes the parameters six times, and the trainer's weight snapshot and gradient reset two
/// more; it is bound by memory traffic, not arithmetic, and as libtorch has no fused CPU Adam reachable
/// from .NET, this loop reads each of θ, g, m, v once and writes the new θ (into the other parameter
/// buffer, so the old one is the snapshot), g, m and v once, with SIMD vectors.
module internal Research.Core.AdamKernel

open System
open System.Numerics
open System.Runtime.InteropServices
open TorchSharp

/// One Adam step over every element, written to `updated` with `theta` left as it was: g = grad + decay·θ;
/// m ← m + (1−β₁)(g − m); v ← β₂v + (1−β₂)g²; updated ← θ + stepSize · m / (√v + epsHat); grad ← 0, with
/// stepSize = −lr·√(1−β₂ᵗ)/(1−β₁ᵗ) and epsHat = ε·√(1−β₂ᵗ).
let step (theta: torch.Tensor) (updated: torch.Tensor) (grad: torch.Tensor) (m: torch.Tensor) (v: torch.Tensor)
         (oneMinusBeta1: float32) (beta2: float32) (oneMinusBeta2: float32) (decay: float32)
         (stepSize: float32) (epsHat: float32) =
    let th = CpuMemory.span theta
    let up = CpuMemory.span updated
    let g = CpuMemory.span grad
    let ms = CpuMemory.span m
    let vs = CpuMemory.span v
    if g.Length <> th.Length || ms.Length <> th.Length || vs.Length <> th.Length || up.Length <> th.Length then
        invalidArg "grad" "The Adam state and the parameters differ in size."
    let upV = MemoryMarshal.Cast<float32, Vector<float32>> up
    let thV = MemoryMarshal.Cast<float32, Vector<float32>> th
    let gV = MemoryMarshal.Cast<float32, Vector<float32>> g
    let mV = MemoryMarshal.Cast<float32, Vector<float32>> ms
    let vV = MemoryMarshal.Cast<float32, Vector<float32>> vs
    let a1, b2, a2 = Vector<float32>(oneMinusBeta1), Vector<float32>(beta2), Vector<float32>(oneMinusBeta2)
    let dec, lr, eps = Vector<float32>(decay), Vector<float32>(stepSize), Vector<float32>(epsHat)
    for i in 0 .. thV.Length - 1 do
        let t = thV.[i]
        let gi = gV.[i] + dec * t
        let mi = mV.[i] + a1 * (gi - mV.[i])
        let vi = b2 * vV.[i] + a2 * gi * gi
        gV.[i] <- Vector<float32>.Zero
        mV.[i] <- mi
        vV.[i] <- vi
        upV.[i] <- t + lr * mi / (Vector.SquareRoot vi + eps)
    // The tail shorter than one vector.
    for i in thV.Length * Vector<float32>.Count .. th.Length - 1 do
        let t = th.[i]
        let gi = g.[i] + decay * t
        let mi = ms.[i] + oneMinusBeta1 * (gi - ms.[i])
        let vi = beta2 * vs.[i] + oneMinusBeta2 * gi * gi
        g.[i] <- 0.0f
        ms.[i] <- mi
        vs.[i] <- vi
        up.[i] <- t + stepSize * mi / (sqrt vi + epsHat)

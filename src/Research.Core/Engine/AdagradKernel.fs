/// Adagrad's update as one pass over contiguous float32 CPU memory (the paper-budget run's optimiser). As
/// tensor operations it makes nine passes over parameter-sized buffers per step (the snapshot, the decayed
/// gradient, the accumulator, √G, + ε, the update, the gradient reset) and took about 45% of a step of the
/// paper's model on one thread; this loop reads θ, g and G once and writes the new θ (into the other
/// parameter buffer, so the old one is the snapshot), G and a zeroed g once.
module internal Research.Core.AdagradKernel

open System.Numerics
open System.Runtime.InteropServices
open TorchSharp

/// One Adagrad step over every element, written to `updated` with `theta` left as it was:
/// g = fma(decay, θ, grad); G ← fma(g, g, G); updated ← θ + (−lr · g) / (√G + ε); grad ← 0. The FMAs are
/// where libtorch's vector loops fuse them, so g and G come out as the tensor path's; libtorch's addcdiv
/// rounds the update differently in a few weights in a thousand (by an ulp), so runs differ from the
/// tensor path's (GPU) ones in the last bits, as Adam's kernel does.
let step (theta: torch.Tensor) (updated: torch.Tensor) (grad: torch.Tensor) (sum: torch.Tensor)
         (decay: float32) (negLr: float32) (eps: float32) =
    let th = CpuMemory.span theta
    let up = CpuMemory.span updated
    let g = CpuMemory.span grad
    let gs = CpuMemory.span sum
    if g.Length <> th.Length || gs.Length <> th.Length || up.Length <> th.Length then
        invalidArg "grad" "The Adagrad state and the parameters differ in size."
    let upV = MemoryMarshal.Cast<float32, Vector<float32>> up
    let thV = MemoryMarshal.Cast<float32, Vector<float32>> th
    let gV = MemoryMarshal.Cast<float32, Vector<float32>> g
    let sV = MemoryMarshal.Cast<float32, Vector<float32>> gs
    let dec, lr, e = Vector<float32>(decay), Vector<float32>(negLr), Vector<float32>(eps)
    for i in 0 .. thV.Length - 1 do
        let t = thV.[i]
        let gi = Vector.FusedMultiplyAdd(dec, t, gV.[i])
        let si = Vector.FusedMultiplyAdd(gi, gi, sV.[i])
        gV.[i] <- Vector<float32>.Zero
        sV.[i] <- si
        upV.[i] <- t + lr * gi / (Vector.SquareRoot si + e)
    // The tail shorter than one vector.
    for i in thV.Length * Vector<float32>.Count .. th.Length - 1 do
        let t = th.[i]
        let gi = System.MathF.FusedMultiplyAdd(decay, t, g.[i])
        let si = System.MathF.FusedMultiplyAdd(gi, gi, gs.[i])
        g.[i] <- 0.0f
        gs.[i] <- si
        up.[i] <- t + negLr * gi / (sqrt si + eps)

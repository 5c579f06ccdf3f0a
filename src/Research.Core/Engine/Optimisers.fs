/// The update rules of the stochastic gradient methods, applied to a model's flat parameter buffer.
module internal Research.Core.Optimisers

open System
open TorchSharp

type Tensor = torch.Tensor

/// One optimiser as the trainer drives it: gradients are zeroed, backward fills them, Step updates.
type IStepRule =
    inherit IDisposable
    /// Makes every gradient zero (a no-op when the last Step already left them so).
    abstract ZeroGrad: unit -> unit
    /// Applies one update from the current gradients. Afterwards the flat buffer's Values hold the new
    /// weights and its Previous the weights from before the step (those to return to, by Flip, if the
    /// next loss is not finite).
    abstract Step: unit -> unit
    /// The optimiser's state tensors, live (moments, accumulated squares), in a fixed order: a checkpoint
    /// saves them and a resumed run copies them back in.
    abstract State: Tensor list
    /// The number of steps taken (Adam's bias correction depends on it); settable for a resumed run.
    abstract StepCount: int with get, set

/// The L2 penalty's gradient added to the loss gradient (PyTorch's weight_decay), or the gradient itself.
let private penalised (flat: FlatParameters.FlatParameters) (decay: Scalar option) =
    match decay with
    | Some d -> flat.Grads.add(flat.Values, alpha = d)
    | None -> flat.Grads.alias ()

/// Native Scalars made once: TorchSharp turns each double into a Scalar that is otherwise left to the
/// finalizer, and one per step interleaved with parameter-sized temporaries kept glibc from reusing its
/// heap (RSS grew by about one parameter set per step).
let private scalars (xs: float list) = xs |> List.map Scalars.ofFloat |> List.toArray

/// Adam (Kingma & Ba 2015) with PyTorch's update, β = (0.9, 0.999), ε = 1e-8: with g the gradient plus
/// the L2 term, m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², θ ← θ − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε).
/// The last step is computed as θ ← θ − (lr·√(1−β₂ᵗ) / (1−β₁ᵗ)) · m / (√v + ε·√(1−β₂ᵗ)), the same quantity
/// with one pass over the parameters fewer, and m by one lerp: the update is bound by memory traffic
/// (six passes over the parameters instead of nine), not arithmetic. On the CPU (float32) the whole update
/// is one pass of AdamKernel, which writes the new weights into the flat buffer's Previous and flips it;
/// elsewhere Previous gets a copy of the weights and these tensor operations update them in place.
type private Adam(flat: FlatParameters.FlatParameters, lr: float, weightDecay: float, fused: bool) =
    let beta1, beta2 = 0.9, 0.999
    let m = torch.zeros_like flat.Values
    let v = torch.zeros_like flat.Values
    let eps = 1e-8
    let s = scalars [ beta1; 1.0 - beta1; beta2; 1.0 - beta2; weightDecay ]
    let decay = if weightDecay <> 0.0 then Some s.[4] else None
    // lerp_ takes its weight as a tensor in TorchSharp: a 0-d one, made once.
    let lerpWeight = torch.tensor(1.0 - beta1, dtype = flat.Values.dtype, device = flat.Values.device)
    let mutable step = 0
    // The one-pass kernel leaves the gradients zero, so ZeroGrad need not pass over them again.
    let mutable gradsAreZero = true
    interface IStepRule with
        member _.ZeroGrad() =
            if not gradsAreZero then flat.Grads.zero_() |> ignore
            gradsAreZero <- false
        member _.Step() =
            use _ = torch.no_grad ()
            step <- step + 1
            let bc1 = 1.0 - Math.Pow(beta1, float step)
            let bc2 = 1.0 - Math.Pow(beta2, float step)
            let epsHat, stepSize = eps * Math.Sqrt bc2, -(lr * Math.Sqrt bc2 / bc1)
            if fused then
                AdamKernel.step flat.Values flat.Previous flat.Grads m v (float32 (1.0 - beta1)) (float32 beta2)
                    (float32 (1.0 - beta2)) (float32 weightDecay) (float32 stepSize) (float32 epsHat)
                flat.Flip()
                gradsAreZero <- true
            else
                flat.Previous.copy_(flat.Values) |> ignore
                use g = penalised flat decay
                m.lerp_(g, lerpWeight) |> ignore
                v.mul_(s.[2]).addcmul_(g, g, value = s.[3]) |> ignore
                use epsHatS = Scalars.ofFloat epsHat
                use stepSizeS = Scalars.ofFloat stepSize
                use denom = v.sqrt ()
                denom.add_(epsHatS, Scalars.one) |> ignore
                flat.Values.addcdiv_(m, denom, value = stepSizeS) |> ignore
        member _.State = [ m; v ]
        member _.StepCount
            with get () = step
            and set value = step <- value
        member _.Dispose() =
            m.Dispose()
            v.Dispose()
            lerpWeight.Dispose()
            for x in s do x.Dispose()

/// Adagrad (Duchi et al. 2011), the AEVB paper's optimiser, as PyTorch computes it with no learning-rate
/// decay, ε = 1e-10: G ← G + g², θ ← θ − lr · g / (√G + ε). On the CPU (float32) the update is one pass of
/// AdagradKernel into the flat buffer's Previous, then a flip; elsewhere Previous gets a copy of the weights
/// and tensor operations update them in place.
type private Adagrad(flat: FlatParameters.FlatParameters, lr: float, weightDecay: float, fused: bool) =
    let sum = torch.zeros_like flat.Values
    let s = scalars [ 1e-10; -lr; weightDecay; 1.0 ]
    let decay = if weightDecay <> 0.0 then Some s.[2] else None
    // The one-pass kernel leaves the gradients zero, so ZeroGrad need not pass over them again.
    let mutable gradsAreZero = true
    interface IStepRule with
        member _.ZeroGrad() =
            if not gradsAreZero then flat.Grads.zero_() |> ignore
            gradsAreZero <- false
        member _.Step() =
            use _ = torch.no_grad ()
            if fused then
                AdagradKernel.step flat.Values flat.Previous flat.Grads sum (float32 weightDecay) (float32 -lr) 1e-10f
                flat.Flip()
                gradsAreZero <- true
            else
                flat.Previous.copy_(flat.Values) |> ignore
                use g = penalised flat decay
                sum.addcmul_(g, g, value = s.[3]) |> ignore
                use std = sum.sqrt ()
                std.add_(s.[0], Scalars.one) |> ignore
                flat.Values.addcdiv_(g, std, value = s.[1]) |> ignore
        member _.State = [ sum ]
        member _.StepCount
            with get () = 0
            and set _ = ()
        member _.Dispose() =
            sum.Dispose()
            for x in s do x.Dispose()

/// Adam over `flat`'s parameters with step size `lr` and L2 penalty `weightDecay`.
let adam (flat: FlatParameters.FlatParameters) (lr: float) (weightDecay: float) : IStepRule =
    new Adam(flat, lr, weightDecay, CpuMemory.applies flat.Values)

/// Adam as tensor operations only (the path of GPUs and other dtypes), for tests on the CPU.
let internal adamUnfused (flat: FlatParameters.FlatParameters) (lr: float) (weightDecay: float) : IStepRule =
    new Adam(flat, lr, weightDecay, false)

/// Adagrad over `flat`'s parameters with step size `lr` and L2 penalty `weightDecay`.
let adagrad (flat: FlatParameters.FlatParameters) (lr: float) (weightDecay: float) : IStepRule =
    new Adagrad(flat, lr, weightDecay, CpuMemory.applies flat.Values)

/// Adagrad as tensor operations only (the path of GPUs and other dtypes), for tests on the CPU.
let internal adagradUnfused (flat: FlatParameters.FlatParameters) (lr: float) (weightDecay: float) : IStepRule =
    new Adagrad(flat, lr, weightDecay, false)

/// A model's parameters moved into one contiguous buffer, with their gradients in another, so that the
/// optimiser update and zeroing the gradients are each one pass over every weight instead of one per
/// layer (a VAE step spent a fifth of its time in small per-layer ops). A second buffer of the same size
/// takes each update, so the weights before the latest step are kept without being copied.
module internal Research.Core.FlatParameters

open System
open TorchSharp

type Tensor = torch.Tensor

/// Re-homes `parameters` (one dtype, one device) into a single buffer. Each parameter becomes a view of
/// `Values` (same values, same Parameter objects, so the modules are unchanged) and its gradient a view of
/// `Grads`, into which backward accumulates. `Previous` is a second buffer laid out as Values; `Flip`
/// makes the parameters views of it instead, and the two swap names. Dispose detaches the gradients
/// again; the parameters keep the storage of the buffer that is Values then.
type FlatParameters(parameters: Modules.Parameter list) =
    do
        if List.isEmpty parameters then invalidArg "parameters" "There are no parameters to train."
        let p0 = parameters.Head
        for p in parameters do
            if p.dtype <> p0.dtype || p.device_type <> p0.device_type || p.device_index <> p0.device_index then
                invalidArg "parameters" "All parameters must share one dtype and one device."
    let p0 = parameters.Head
    let total = parameters |> List.sumBy (fun p -> p.numel ())
    let buffers = [| for _ in 1 .. 2 -> torch.empty(total, dtype = p0.dtype, device = p0.device) |]
    let grads = torch.zeros(total, dtype = p0.dtype, device = p0.device)
    /// The parameters' shapes laid out over a flat buffer, in list order.
    let viewsOf (flat: Tensor) =
        let mutable offset = 0L
        [| for p in parameters do
               let n = p.numel ()
               use slice = flat.narrow(0L, offset, n)
               offset <- offset + n
               slice.view(p.shape) |]
    // Made once: a Flip per training step only re-points the parameters.
    let views = buffers |> Array.map viewsOf
    let mutable current = 0
    do
        use _ = torch.no_grad ()
        for p, v, g in Array.zip3 (List.toArray parameters) views.[0] (viewsOf grads) do
            use g = g // the parameter keeps its own reference
            v.copy_(p) |> ignore
            p.set_(v) |> ignore
            p.grad <- g

    /// Every parameter value, in the order of the list given: the buffer the parameters are views of.
    member _.Values = buffers.[current]
    /// The other buffer, laid out as Values: optimisers write the updated weights here, then Flip.
    member _.Previous = buffers.[1 - current]
    /// Makes the parameters views of Previous, which becomes Values (and Values becomes Previous).
    member _.Flip() =
        use _ = torch.no_grad ()
        current <- 1 - current
        for p, v in Seq.zip parameters views.[current] do p.set_(v) |> ignore
    /// Every gradient, laid out as Values.
    member _.Grads = grads
    /// The number of scalar parameters.
    member _.Count = total

    interface IDisposable with
        member _.Dispose() =
            for p in parameters do
                use g = p.grad
                p.grad <- null
            for vs in views do for v in vs do v.Dispose()
            for b in buffers do b.Dispose()
            grads.Dispose()

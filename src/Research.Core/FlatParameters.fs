/// A model's parameters moved into one contiguous buffer, with their gradients in another, so that the
/// optimiser update, zeroing the gradients and the divergence snapshot are each one tensor operation over
/// every weight instead of one per layer (a VAE step spent a fifth of its time in small per-layer ops).
module Research.Core.FlatParameters

open System
open TorchSharp

type Tensor = torch.Tensor

/// Re-homes `parameters` (one dtype, one device) into a single buffer. Each parameter becomes a view of
/// `Values` (same values, same Parameter objects, so the modules are unchanged) and its gradient a view of
/// `Grads`, into which backward accumulates. Dispose detaches the gradients again; the parameters keep
/// the buffer's storage.
type FlatParameters(parameters: Modules.Parameter list) =
    do
        if List.isEmpty parameters then invalidArg "parameters" "There are no parameters to train."
        let p0 = parameters.Head
        for p in parameters do
            if p.dtype <> p0.dtype || p.device_type <> p0.device_type || p.device_index <> p0.device_index then
                invalidArg "parameters" "All parameters must share one dtype and one device."
    let p0 = parameters.Head
    let total = parameters |> List.sumBy (fun p -> p.numel ())
    let values = torch.empty(total, dtype = p0.dtype, device = p0.device)
    let grads = torch.zeros(total, dtype = p0.dtype, device = p0.device)
    do
        use _ = torch.no_grad ()
        let mutable offset = 0L
        for p in parameters do
            let n = p.numel ()
            use vSlice = values.narrow(0L, offset, n)
            use v = vSlice.view(p.shape)
            v.copy_(p) |> ignore
            p.set_(v) |> ignore
            use gSlice = grads.narrow(0L, offset, n)
            use g = gSlice.view(p.shape)
            p.grad <- g
            offset <- offset + n

    /// Every parameter value, in the order of the list given.
    member _.Values = values
    /// Every gradient, laid out as Values.
    member _.Grads = grads
    /// The number of scalar parameters.
    member _.Count = total

    interface IDisposable with
        member _.Dispose() =
            for p in parameters do
                use g = p.grad
                p.grad <- null
            values.Dispose()
            grads.Dispose()

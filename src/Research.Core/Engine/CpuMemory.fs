/// A float32 CPU tensor's own memory as a span, for the optimiser kernels (one pass over the parameters
/// without copies). Where LibTorchSharp's data pointer does not resolve, `applies` is false and the
/// optimisers keep to tensor operations.
module internal Research.Core.CpuMemory

#nowarn "9" // native pointers: the tensors' own memory, bounds given by their element count

open System
open System.Runtime.InteropServices
open Microsoft.FSharp.NativeInterop
open TorchSharp

[<DllImport("LibTorchSharp")>]
extern nativeint private THSTensor_data(nativeint tensor)

/// Whether LibTorchSharp's data-pointer entry point resolves in this process (checked once, on a tiny
/// tensor); where it does not, the optimisers keep to tensor operations.
let private pointerAvailable =
    lazy
        (try
            use probe = torch.ones(4L)
            THSTensor_data probe.Handle <> 0n
         with
         | :? DllNotFoundException | :? EntryPointNotFoundException -> false)

/// True when a kernel can work on `t` in place: float32, contiguous, in CPU memory, indexable by int.
let applies (t: torch.Tensor) =
    t.device_type = DeviceType.CPU && t.dtype = torch.float32 && t.is_contiguous ()
    && t.numel () < int64 Int32.MaxValue && pointerAvailable.Force()

/// The tensor's float32 elements in place (`applies` must hold).
let span (t: torch.Tensor) =
    Span<float32>(NativePtr.toVoidPtr (NativePtr.ofNativeInt<float32> (THSTensor_data t.Handle)), int (t.numel ()))

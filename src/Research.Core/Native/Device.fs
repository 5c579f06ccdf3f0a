/// The single place where a device string becomes a torch device.
module Research.Core.Device

open System
open TorchSharp

/// Parses "auto", "cpu", "cuda" or "cuda:N". "auto" picks CUDA when a CUDA backend and device are
/// present, else the CPU. Asking for CUDA where there is none is an error, not a silent fallback.
let parse (name: string) : torch.Device =
    if isNull name then nullArg "device"
    Native.ensureLoaded ()
    let s = name.Trim().ToLowerInvariant()
    let cudaAvailable () = torch.cuda.is_available ()
    let requireCuda index =
        if not (cudaAvailable ()) then
            raise (ArgumentException(
                $"Device \"{name}\" was requested but no CUDA device is usable: this build references the "
                + "CPU TorchSharp package or the machine has no GPU. Build with -p:TorchBackend=cuda on a "
                + "CUDA machine, or use \"cpu\" / \"auto\".", "device"))
        let count = torch.cuda.device_count ()
        if index >= count then
            raise (ArgumentException($"Device \"{name}\" does not exist: {count} CUDA device(s) present.", "device"))
        torch.Device(DeviceType.CUDA, index)
    match s with
    | "auto" -> if cudaAvailable () then torch.Device(DeviceType.CUDA, 0) else torch.CPU
    | "cpu" -> torch.CPU
    | "cuda" -> requireCuda 0
    | _ when s.StartsWith "cuda:" ->
        match Int32.TryParse(s.Substring 5) with
        | true, i when i >= 0 -> requireCuda i
        | _ -> raise (ArgumentException($"Unknown device \"{name}\": expected \"auto\", \"cpu\", \"cuda\" or \"cuda:N\".", "device"))
    | _ -> raise (ArgumentException($"Unknown device \"{name}\": expected \"auto\", \"cpu\", \"cuda\" or \"cuda:N\".", "device"))

/// Facts about the native libtorch this process loaded.
module Research.Core.Native

open System.IO
open TorchSharp

/// The version of libtorch that TorchSharp was built against and ships (the NuGet package).
[<Literal>]
let ExpectedLibTorchVersion = "2.10"

/// Forces TorchSharp to load its native backend now (it does so lazily otherwise).
let ensureLoaded () = torch.InitializeDeviceType DeviceType.CPU

/// Full paths of the libtorch / LibTorchSharp shared objects mapped into this process (Linux only;
/// empty elsewhere). Used to prove that the package's libtorch, not a system copy, was loaded.
let loadedLibraries () : string list =
    ensureLoaded ()
    if File.Exists "/proc/self/maps" then
        File.ReadAllLines "/proc/self/maps"
        |> Array.choose (fun line ->
            let i = line.IndexOf '/'
            if i < 0 then None else Some(line.Substring i))
        |> Array.filter (fun p ->
            let name = Path.GetFileName p
            name.StartsWith "libtorch" || name.StartsWith "libLibTorchSharp" || name.StartsWith "libc10")
        |> Array.distinct
        |> Array.toList
    else []

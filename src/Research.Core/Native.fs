/// Facts about the native libtorch this process loaded.
module Research.Core.Native

open System
open System.IO
open System.Runtime.InteropServices
open TorchSharp

[<DllImport("libc", EntryPoint = "setenv")>]
extern int private setenv(string name, string value, int overwrite)

/// The version of libtorch that TorchSharp was built against and ships (the NuGet package).
[<Literal>]
let ExpectedLibTorchVersion = "2.10"

/// MKL's sgemm picks kernels by memory alignment, so the same product can differ in the last bit between
/// two copies of the same weights. Its strict conditional-numerical-reproducibility mode removes that;
/// MKL reads the variable at its first call, so it is set (unless the user set it) before any tensor work.
let private loaded =
    lazy
        (if OperatingSystem.IsLinux() && isNull (Environment.GetEnvironmentVariable "MKL_CBWR") then
             setenv ("MKL_CBWR", "AUTO,STRICT", 0) |> ignore
             Environment.SetEnvironmentVariable("MKL_CBWR", "AUTO,STRICT")
         torch.InitializeDeviceType DeviceType.CPU)

/// Loads TorchSharp's native backend (it does so lazily otherwise) with bit-reproducible BLAS settings.
/// Every entry point of this library calls it; F# code that does its own tensor work first may call it
/// at start-up to get the same reproducibility.
let ensureLoaded () = loaded.Force()

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

/// Facts about the native libtorch this process loaded.
module Research.Core.Native

open System
open System.IO
open System.Runtime.InteropServices
open TorchSharp

[<DllImport("libc", EntryPoint = "setenv")>]
extern int private setenv(string name, string value, int overwrite)

[<DllImport("libc", EntryPoint = "malloc_trim")>]
extern int private malloc_trim(unativeint pad)

[<DllImport("libc", EntryPoint = "mallopt")>]
extern int private mallopt(int param, int value)

/// The version of libtorch that TorchSharp was built against and ships (the NuGet package).
[<Literal>]
let ExpectedLibTorchVersion = "2.10"

/// What the library did about MKL's CPU-vendor check when it loaded libtorch.
type MklCodePath =
    /// Not an AMD x86-64 CPU on Linux, or no MKL in this libtorch: MKL runs as shipped.
    | AsShipped of reason: string
    /// AMD CPU: MKL's cached "is this an Intel CPU" answer was set to yes, so MKL picks its kernels by the
    /// CPU's features (AVX-512 on Zen 4/5) instead of falling back to its generic AVX2 code.
    | FeatureDispatch
    /// AMD CPU, but RESEARCH_MKL_VENDOR_CHECK=keep asked to leave MKL as shipped.
    | KeptByUser
    /// AMD CPU, but this MKL's check does not have the expected shape; it was left as shipped.
    | Unrecognised of reason: string

/// The environment variable that, set to "keep", leaves MKL's vendor check alone.
[<Literal>]
let VendorCheckVariable = "RESEARCH_MKL_VENDOR_CHECK"

let private isAmd () =
    if not (Runtime.Intrinsics.X86.X86Base.IsSupported) then false
    else
        let struct (_, b, c, d) = Runtime.Intrinsics.X86.X86Base.CpuId(0, 0)
        let text (r: int) = Text.Encoding.ASCII.GetString(BitConverter.GetBytes r)
        text b + text d + text c = "AuthenticAMD"

let private mappedFiles = LibTorchLoader.mappedFiles

let private torchCpuPath () =
    mappedFiles () |> Array.tryFind (fun p -> Path.GetFileName p = "libtorch_cpu.so")

/// MKL (statically linked into libtorch_cpu) asks `mkl_serv_intel_cpu_true` whether the CPU is Intel and,
/// on AMD, runs generic AVX2 kernels whatever the CPU supports: sgemm reaches 205 GFLOP/s here where its
/// AVX-512 kernels reach 476. The function caches its answer in a global int (negative until computed);
/// it begins `mov eax, [rip+cache]; test eax, eax; js compute; ret`. Writing 1 into that cache, a data
/// write with no code patched, makes MKL dispatch on CPU features, as it does on Intel. The bytes are
/// checked first, so a different MKL build is left alone.
let private enableMklFeatureDispatch () =
    if not (OperatingSystem.IsLinux()) || RuntimeInformation.ProcessArchitecture <> Architecture.X64 then
        AsShipped "not x86-64 Linux"
    elif not (isAmd ()) then AsShipped "not an AMD CPU"
    elif Environment.GetEnvironmentVariable VendorCheckVariable = "keep" then KeptByUser
    else
        match torchCpuPath () with
        | None -> AsShipped "libtorch_cpu.so is not mapped"
        | Some path ->
            let handle = NativeLibrary.Load path
            match NativeLibrary.TryGetExport(handle, "mkl_serv_intel_cpu_true") with
            | false, _ -> AsShipped "this libtorch has no MKL"
            | true, f ->
                let code = Array.zeroCreate<byte> 11
                Marshal.Copy(f, code, 0, code.Length)
                let prologue = [| 0x8Buy; 0x05uy |]
                let epilogue = [| 0x85uy; 0xC0uy; 0x78uy; 0x01uy; 0xC3uy |]
                if code.[0..1] <> prologue || code.[6..10] <> epilogue then
                    Unrecognised(sprintf "unexpected code at mkl_serv_intel_cpu_true: %s" (Convert.ToHexString code))
                else
                    let cache = f + nativeint 6 + nativeint (BitConverter.ToInt32(code, 2))
                    Marshal.WriteInt32(cache, 1)
                    FeatureDispatch

/// What the library did about glibc malloc's settings when it loaded libtorch.
type MallocTuning =
    /// M_MMAP_THRESHOLD and M_TOP_PAD set to these byte counts.
    | Tuned of mmapThreshold: int * topPad: int
    /// The user chose malloc's settings (a MALLOC_*_ variable, a glibc.malloc tunable in GLIBC_TUNABLES,
    /// or RESEARCH_MALLOC=keep): left alone.
    | LeftToUser
    /// Not Linux, or a C library without mallopt.
    | NotApplicable of reason: string

/// The environment variable that, set to "keep", leaves glibc malloc's settings as they are.
[<Literal>]
let MallocVariable = "RESEARCH_MALLOC"

/// Blocks below this come from the heap and are reused: a training step's largest buffers (a transposed
/// convolution's columns, 51 MB for the MNIST conv VAE) are below it.
[<Literal>]
let MmapThresholdBytes = 268435456

/// Free memory kept at the heap's top when it shrinks, so the next step does not fault it in again.
[<Literal>]
let TopPadBytes = 134217728

/// By default glibc's malloc serves blocks above a threshold (at most 32 MiB, raised as big blocks are
/// freed) with fresh mmaps and trims the heap's top as soon as it is free, so a step's large buffers are
/// handed back to the kernel and faulted in again at every step: 100 minibatches of the MNIST conv VAE
/// took 3.4 s, a third of the CPU time in the kernel, against 1.7 s with the settings below (the bench's
/// conv-epoch worker on this project's 2-core machine). The cost is RSS: the process keeps up to about TopPadBytes of freed memory.
let private tuneMalloc () =
    let userSet =
        [ "MALLOC_TOP_PAD_"; "MALLOC_MMAP_THRESHOLD_"; "MALLOC_TRIM_THRESHOLD_"; "MALLOC_MMAP_MAX_" ]
        |> List.exists (fun v -> not (isNull (Environment.GetEnvironmentVariable v)))
        || (match Environment.GetEnvironmentVariable "GLIBC_TUNABLES" with null -> false | t -> t.Contains "glibc.malloc.")
        || Environment.GetEnvironmentVariable MallocVariable = "keep"
    if not (OperatingSystem.IsLinux()) then NotApplicable "not Linux"
    elif userSet then LeftToUser
    else
        try
            // glibc's malloc.h: M_TOP_PAD = -2, M_MMAP_THRESHOLD = -3; mallopt returns 1 on success.
            if mallopt (-3, MmapThresholdBytes) = 1 && mallopt (-2, TopPadBytes) = 1 then Tuned(MmapThresholdBytes, TopPadBytes)
            else NotApplicable "mallopt refused the settings"
        with :? EntryPointNotFoundException | :? DllNotFoundException -> NotApplicable "no mallopt in this C library"

/// MKL's sgemm picks kernels by memory alignment, so the same product can differ in the last bit between
/// two copies of the same weights. Its strict conditional-numerical-reproducibility mode removes that;
/// MKL reads the variable at its first call, so it is set (unless the user set it) before any tensor work.
let private loaded =
    lazy
        (if OperatingSystem.IsLinux() && isNull (Environment.GetEnvironmentVariable "MKL_CBWR") then
             setenv ("MKL_CBWR", "AUTO,STRICT", 0) |> ignore
             Environment.SetEnvironmentVariable("MKL_CBWR", "AUTO,STRICT")
         let malloc = tuneMalloc ()
         let loadPath = LibTorchLoader.ensureLoadable ()
         torch.InitializeDeviceType DeviceType.CPU
         loadPath, (try enableMklFeatureDispatch () with e -> Unrecognised e.Message), malloc)

/// The library's one native initialisation, run once per process by every entry point of this library
/// before any tensor work: (1) MKL_CBWR=AUTO,STRICT unless set (bit-reproducible BLAS); (2) on Linux
/// systems whose libstdc++ lacks GLIBCXX_3.4.32, a patched copy of libLibTorchSharp.so (LibTorchLoader);
/// (3) TorchSharp's CPU backend; (4) on AMD CPUs, MKL's feature-based kernel choice (see mklCodePath);
/// (5) on Linux, glibc malloc's mmap threshold and top padding, so a step's large buffers are reused, not
/// faulted in anew every step (see mallocTuning).
/// Code that uses TorchSharp itself before calling this library (building its own modules, say) must call
/// it first: TorchSharp's own load fails on such systems otherwise, and its failure is permanent for the process.
let ensureLoaded () = loaded.Force() |> ignore

/// What was done about MKL's vendor check when libtorch loaded (loads it if needed).
let mklCodePath () : MklCodePath = let _, m, _ = loaded.Force() in m

/// What was done about glibc malloc's settings when libtorch loaded (loads it if needed).
let mallocTuning () : MallocTuning = let _, _, t = loaded.Force() in t

/// How libLibTorchSharp.so was made loadable (loads it if needed): not needed, patched by the build, or a
/// patched copy in the per-user cache.
let libTorchSharpLoadPath () : LibTorchLoader.LoadPath = let l, _, _ = loaded.Force() in l

/// Full paths of the libtorch / LibTorchSharp shared objects mapped into this process (Linux only;
/// empty elsewhere). Used to prove that the package's libtorch, not a system copy, was loaded.
let loadedLibraries () : string list =
    ensureLoaded ()
    mappedFiles ()
    |> Array.filter (fun p ->
        let name = Path.GetFileName p
        name.StartsWith "libtorch" || name.StartsWith "libLibTorchSharp" || name.StartsWith "libc10")
    |> Array.toList

/// Hands memory that glibc's malloc holds free back to the system (malloc_trim), after a large release
/// such as a model's Dispose. glibc keeps freed blocks in the heap (up to the top padding, and below an
/// mmap threshold that it raises after freeing big blocks), so freeing a model alone may not lower RSS.
/// No-op off Linux or without glibc.
let releaseFreedMemory () =
    if OperatingSystem.IsLinux() then
        try malloc_trim 0un |> ignore with
        | :? EntryPointNotFoundException | :? DllNotFoundException -> ()

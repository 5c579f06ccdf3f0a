/// Makes TorchSharp's native library loadable at run time, whatever built the program.
///
/// TorchSharp 0.107's libLibTorchSharp.so declares a need for GLIBCXX_3.4.32; older libstdc++ (Debian 12
/// has 3.4.30) lacks that version and the dynamic loader refuses the library, so TorchSharp's type
/// initialiser throws. The only symbol of that version, std::ios_base_library_init(), is never called, so
/// marking the version-need entry weak (VER_FLG_WEAK in .gnu.version_r) is enough. The repository's build
/// (and the package's buildTransitive targets) do that to the copy in a build output; this module covers
/// every other way a program can get TorchSharp (a ProjectReference from another folder, `#r "nuget: …"`
/// in F# Interactive or a notebook, a publish): it writes a patched copy into a per-user cache folder and
/// has TorchSharp load that copy. A build output referenced by path from F# Interactive is patched but not
/// reliably found by TorchSharp's probing, so TorchSharp is handed that copy the same way.
module Research.Core.LibTorchLoader

open System
open System.IO
open System.Reflection
open System.Runtime.InteropServices
open System.Security.Cryptography
open System.Text

/// The glibc C++ library version that libLibTorchSharp.so asks for and Debian 12 lacks.
[<Literal>]
let NeededVersion = "GLIBCXX_3.4.32"

/// The environment variable that overrides the cache folder of patched copies.
[<Literal>]
let CacheVariable = "RESEARCH_NATIVE_CACHE"

/// How libLibTorchSharp.so came to be loadable.
type LoadPath =
    /// Not Linux, or this libstdc++ has GLIBCXX_3.4.32: nothing to do.
    | NotNeeded of reason: string
    /// The copy beside the program (or beside TorchSharp.dll) was patched already, by the build: loaded as it is.
    | PatchedByBuild of path: string
    /// A patched copy in the per-user cache (written now or by an earlier process) is what TorchSharp loads.
    | PatchedCopy of original: string * copy: string

/// Marks the version-need entry `version` weak in an ELF64 little-endian shared object, in place.
/// Returns true when a flag was changed; false when the entry is absent or already weak, or when the
/// bytes are not such an ELF file (every offset is bounds-checked, so arbitrary bytes never throw).
let weakenVersionNeed (version: string) (b: byte[]) : bool =
    let inside (o: int64) (n: int64) = o >= 0L && n >= 0L && o + n <= int64 b.Length
    let u16 (o: int64) = if inside o 2L then int b.[int o] ||| (int b.[int o + 1] <<< 8) else -1
    let u32 (o: int64) = if inside o 4L then int64 (BitConverter.ToUInt32(b, int o)) else -1L
    let u64 (o: int64) = if inside o 8L then (let v = BitConverter.ToUInt64(b, int o) in if v > uint64 Int64.MaxValue then -1L else int64 v) else -1L
    let cString (o: int64) =
        if not (inside o 1L) then None
        else
            let e = Array.IndexOf(b, 0uy, int o)
            if e < 0 then None else Some(Encoding.Latin1.GetString(b, int o, e - int o))
    let isElf64Le = b.Length >= 64 && b.[0] = 0x7fuy && b.[1] = byte 'E' && b.[2] = byte 'L' && b.[3] = byte 'F' && b.[4] = 2uy && b.[5] = 1uy
    let mutable changed = false
    if isElf64Le then
        let shoff, shentsize, shnum = u64 0x28L, int64 (u16 0x3AL), int64 (u16 0x3CL)
        for i in 0L .. shnum - 1L do
            let sh = shoff + i * shentsize
            if shoff > 0L && shentsize >= 0x40L && u32 (sh + 4L) = 0x6ffffffeL then // SHT_GNU_verneed
                let strings = u64 (shoff + u32 (sh + 0x28L) * shentsize + 0x18L) // the linked string table
                let mutable vn = u64 (sh + 0x18L)
                let mutable n = u32 (sh + 0x2CL)
                // Each step moves forward by a checked, positive offset, so a loop in the data cannot hang.
                while n > 0L && inside vn 16L do
                    let mutable aux = vn + u32 (vn + 8L)
                    let mutable a = u16 (vn + 2L)
                    while a > 0 && inside aux 16L do
                        let flags = aux + 4L
                        if strings >= 0L && cString (strings + u32 (aux + 8L)) = Some version && (u16 flags &&& 2) = 0 then
                            b.[int flags] <- b.[int flags] ||| 2uy // vna_flags |= VER_FLG_WEAK
                            changed <- true
                        let next = u32 (aux + 12L)
                        a <- if next > 0L then a - 1 else 0
                        aux <- aux + next
                    let next = u32 (vn + 12L)
                    n <- if next > 0L then n - 1L else 0L
                    vn <- vn + next
    changed

/// True when the shared object's need for `version` is present and not yet weak.
let needsPatch (version: string) (b: byte[]) = weakenVersionNeed version (Array.copy b)

/// The distinct files mapped into this process, from /proc/self/maps (empty where there is none).
let internal mappedFiles () =
    if File.Exists "/proc/self/maps" then
        File.ReadAllLines "/proc/self/maps"
        |> Array.choose (fun line -> let i = line.IndexOf '/' in if i < 0 then None else Some(line.Substring i))
        |> Array.distinct
    else [||]

/// The libstdc++ this process uses (the runtime host has it mapped), else the usual system paths.
let private systemLibStdCxx () =
    let mapped = mappedFiles () |> Array.tryFind (fun p -> Path.GetFileName(p).StartsWith "libstdc++.so")
    match mapped with
    | Some p when File.Exists p -> Some p
    | _ ->
        [ "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"; "/usr/lib64/libstdc++.so.6"; "/usr/lib/libstdc++.so.6"
          "/lib/x86_64-linux-gnu/libstdc++.so.6"; "/usr/lib/aarch64-linux-gnu/libstdc++.so.6" ]
        |> List.tryFind File.Exists

let private hasVersion (library: string) (version: string) =
    Encoding.Latin1.GetString(File.ReadAllBytes library).Contains(version + "\000", StringComparison.Ordinal)

// DeviceType is an enum of TorchSharp's assembly: naming it does not run the `torch` type initialiser.
let private torchSharpAssembly () = typeof<TorchSharp.DeviceType>.Assembly

/// Folders where a native library of the program may be: the runtime's native search folders (from the
/// app's deps.json), the app folder and its runtimes/<rid>/native, and, when TorchSharp.dll was loaded from
/// a NuGet package (F# Interactive, notebooks), that package's runtimes/linux-<arch>/native.
let private searchFolders () =
    let rid = if RuntimeInformation.ProcessArchitecture = Architecture.Arm64 then "linux-arm64" else "linux-x64"
    let fromRuntime =
        match AppContext.GetData "NATIVE_DLL_SEARCH_DIRECTORIES" with
        | :? string as s -> s.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries) |> List.ofArray
        | _ -> []
    let torchSharpDir = Path.GetDirectoryName(torchSharpAssembly().Location)
    [ yield! fromRuntime
      yield AppContext.BaseDirectory
      if not (String.IsNullOrEmpty torchSharpDir) then
          yield torchSharpDir
          yield Path.Combine(torchSharpDir, "..", "..", "runtimes", rid, "native") ]
    |> List.collect (fun d -> [ d; Path.Combine(d, "runtimes", rid, "native") ])
    |> List.map Path.GetFullPath
    |> List.distinct

/// The NuGet package folders that may hold libtorch (the global packages folder TorchSharp came from, or
/// NUGET_PACKAGES, or ~/.nuget/packages): every libtorch-* package's runtimes/<rid>/native folders.
let private nugetLibTorchFolders () =
    let rid = if RuntimeInformation.ProcessArchitecture = Architecture.Arm64 then "linux-arm64" else "linux-x64"
    let torchSharpDir = Path.GetDirectoryName(torchSharpAssembly().Location)
    let roots =
        [ if not (String.IsNullOrEmpty torchSharpDir) then yield Path.GetFullPath(Path.Combine(torchSharpDir, "..", "..", "..", ".."))
          match Environment.GetEnvironmentVariable "NUGET_PACKAGES" with
          | null | "" -> ()
          | p -> yield p
          yield Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".nuget", "packages") ]
        |> List.distinct |> List.filter Directory.Exists
    [ for root in roots do
          for package in Directory.GetDirectories(root, "libtorch-*") do
              for version in Directory.GetDirectories package do
                  yield Path.Combine(version, "runtimes", rid, "native") ]
    |> List.filter Directory.Exists

let private findIn (folders: string list) (file: string) =
    folders |> List.map (fun d -> Path.Combine(d, file)) |> List.tryFind File.Exists

/// The per-user cache folder for patched copies: $RESEARCH_NATIVE_CACHE, else $XDG_CACHE_HOME/research/native,
/// else ~/.cache/research/native.
let cacheFolder () =
    match Environment.GetEnvironmentVariable CacheVariable with
    | null | "" ->
        let xdg = Environment.GetEnvironmentVariable "XDG_CACHE_HOME"
        let baseDir =
            if String.IsNullOrEmpty xdg then Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".cache")
            else xdg
        Path.Combine(baseDir, "research", "native")
    | folder -> folder

/// Writes `bytes` to `path` through a temp file in the same folder, flushed to disk, then renamed, so that
/// another process never sees a partial copy (two processes racing write the same bytes).
let private writeAtomically (path: string) (bytes: byte[]) =
    let temp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp"
    try
        using (new FileStream(temp, FileMode.CreateNew, FileAccess.Write)) (fun s ->
            s.Write(bytes, 0, bytes.Length)
            s.Flush true)
        File.Move(temp, path, true)
    finally
        if File.Exists temp then File.Delete temp

/// The patched copy of `original` in the cache, keyed by the original's SHA-256 (so a new TorchSharp gets
/// a new copy and a damaged one is never reused: its hash is checked too).
let private patchedCopy (original: string) (bytes: byte[]) =
    let hash = Convert.ToHexString(SHA256.HashData bytes).ToLowerInvariant()
    let folder = Path.Combine(cacheFolder (), hash.Substring(0, 16))
    let copy = Path.Combine(folder, Path.GetFileName original)
    let patched = Array.copy bytes
    weakenVersionNeed NeededVersion patched |> ignore
    let current = if File.Exists copy then Some(File.ReadAllBytes copy) else None
    if current |> Option.forall (fun c -> not (c.AsSpan().SequenceEqual(ReadOnlySpan patched))) then
        Directory.CreateDirectory folder |> ignore
        writeAtomically copy patched
    copy

/// Loads `file`, a libLibTorchSharp.so that needs no patch (`original` or its patched copy), after the
/// package's libtorch.so (looked for beside `original` first), and answers TorchSharp's every request for
/// "LibTorchSharp" with it. TorchSharp's own probing does not find a copy in the per-user cache; nor, reliably,
/// the build's patched copy under runtimes/ when no deps.json lists it: an assembly referenced by its path from
/// F# Interactive finds it only through F# Interactive's native resolver, which missed it for a script that
/// referenced scripts/Reproduce's output and started a process first. TorchSharp then falls back to the NuGet
/// cache's unpatched library, which does not load.
let private route (original: string) (file: string) (folders: string list) (why: string) =
    // A copy alone in the cache cannot find libtorch through its RUNPATH ($ORIGIN): load the package's
    // libtorch.so first, by its full path; the dynamic loader then resolves the copy's needs by their sonames.
    let libtorch =
        match findIn (Path.GetDirectoryName original :: folders @ nugetLibTorchFolders ()) "libtorch.so" with
        | Some p -> p
        | None ->
            raise (DllNotFoundException(
                $"libtorch.so (the libtorch-cpu package) was not found beside {original} or in the NuGet packages folder."))
    NativeLibrary.Load libtorch |> ignore
    let handle =
        try NativeLibrary.Load file
        with e -> raise (DllNotFoundException($"{file} ({why}) did not load: {e.Message}", e))
    // Only one resolver per assembly is allowed; if the program set one, the library is loaded already and
    // the loader matches the bare name to it by its soname.
    try
        NativeLibrary.SetDllImportResolver(
            torchSharpAssembly (),
            DllImportResolver(fun name _ _ -> if name = "LibTorchSharp" then handle else IntPtr.Zero))
    with :? InvalidOperationException -> ()

let private prepare () : LoadPath =
    if not (OperatingSystem.IsLinux()) then NotNeeded "not Linux"
    else
        match systemLibStdCxx () with
        | None -> NotNeeded "no libstdc++ found to check"
        | Some lib when hasVersion lib NeededVersion -> NotNeeded $"{lib} has {NeededVersion}"
        | Some lib ->
            let folders = searchFolders ()
            match findIn folders "libLibTorchSharp.so" with
            | None ->
                let searched = String.Join(", ", folders)
                raise (DllNotFoundException(
                    $"libLibTorchSharp.so was not found (searched {searched}); reference the "
                    + "TorchSharp-cpu package (Research.Core does) so that the native library is restored."))
            | Some original ->
                let bytes = File.ReadAllBytes original
                if not (needsPatch NeededVersion bytes) then
                    route original original folders $"patched by the build for {lib}, which lacks {NeededVersion}"
                    PatchedByBuild original
                else
                    let copy = patchedCopy original bytes
                    route original copy folders $"the patched copy of {original} for {lib}, which lacks {NeededVersion}"
                    PatchedCopy(original, copy)

let private prepared = lazy (prepare ())

/// Makes libLibTorchSharp.so loadable before TorchSharp first loads it (see the module's summary); runs once
/// per process and must run before any use of TorchSharp's `torch` type. Native.ensureLoaded calls it.
let ensureLoadable () : LoadPath = prepared.Force()

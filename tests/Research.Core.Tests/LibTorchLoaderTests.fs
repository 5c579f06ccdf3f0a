module Research.Core.Tests.LibTorchLoaderTests

open System
open System.Diagnostics
open System.IO
open Expecto
open FsCheck
open FsCheck.FSharp
open Research.Core

/// The package's own libLibTorchSharp.so, as NuGet restored it (never patched: patches go to copies).
let private packageLibrary () =
    let root =
        match Environment.GetEnvironmentVariable "NUGET_PACKAGES" with
        | null | "" -> Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".nuget", "packages")
        | p -> p
    Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so")

/// readelf's view of the version needs: the line of `version`, e.g. "0x0030:   Name: GLIBCXX_3.4.32  Flags: WEAK  Version: 9".
let private readelfLine (file: string) (version: string) =
    let psi = ProcessStartInfo("readelf", [ "-V"; file ], RedirectStandardOutput = true, UseShellExecute = false)
    use p = Process.Start psi
    let text = p.StandardOutput.ReadToEnd()
    p.WaitForExit()
    text.Split('\n') |> Array.find (fun l -> l.Contains("Name: " + version + " "))

let private differingOffsets (a: byte[]) (b: byte[]) =
    [ for i in 0 .. a.Length - 1 do if a.[i] <> b.[i] then yield i ]

let tests =
    testList "LibTorchLoader" [
        test "weakening the package's GLIBCXX_3.4.32 need changes one flag byte, which readelf reads as WEAK; a second pass changes nothing" {
            let original = File.ReadAllBytes(packageLibrary ())
            Expect.isTrue (LibTorchLoader.needsPatch LibTorchLoader.NeededVersion original) "the shipped library needs the version strongly"
            let patched = Array.copy original
            Expect.isTrue (LibTorchLoader.weakenVersionNeed LibTorchLoader.NeededVersion patched) "the first pass changes the entry"
            let changed = differingOffsets original patched
            Expect.hasLength changed 1 "one byte differs"
            Expect.equal (patched.[changed.Head] ^^^ original.[changed.Head]) 2uy "the difference is VER_FLG_WEAK (0x2)"
            Expect.isFalse (LibTorchLoader.weakenVersionNeed LibTorchLoader.NeededVersion patched) "a second pass finds it weak already"
            Expect.isFalse (LibTorchLoader.needsPatch LibTorchLoader.NeededVersion patched) "the patched copy needs nothing more"
            Expect.isFalse (LibTorchLoader.weakenVersionNeed "GLIBCXX_9.9.99" (Array.copy original)) "a version it does not need is left alone"
            let file = Path.Combine(Path.GetTempPath(), $"research-loader-{Guid.NewGuid():N}.so")
            try
                File.WriteAllBytes(file, original)
                Expect.isFalse ((readelfLine file LibTorchLoader.NeededVersion).Contains "WEAK") "readelf: the shipped entry is not weak"
                File.WriteAllBytes(file, patched)
                Expect.stringContains (readelfLine file LibTorchLoader.NeededVersion) "Flags: WEAK" "readelf: the patched entry is weak"
            finally File.Delete file
        }

        test "the build's patch of this test program's copy and the run-time patch give the same bytes" {
            let output = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so")
            let built = File.ReadAllBytes output
            let original = File.ReadAllBytes(packageLibrary ())
            match Native.libTorchSharpLoadPath () with
            | LibTorchLoader.PatchedByBuild path ->
                Expect.equal path output "this process loaded the build-patched copy beside it"
                let expected = Array.copy original
                Expect.isTrue (LibTorchLoader.weakenVersionNeed LibTorchLoader.NeededVersion expected) "the shipped library needed the patch"
                Expect.sequenceEqual built expected "build/NativeGlibcxxPatch.targets and LibTorchLoader write the same bytes"
            | LibTorchLoader.NotNeeded reason ->
                Expect.sequenceEqual built original $"nothing was patched where it was not needed ({reason})"
            | other -> failtest $"a program built in this repository loads its own copy, not {other}"
        }

        testPropertyWithConfig (Accuracy.properties 300) "arbitrary bytes after an ELF64 header never throw: the answer is true or false" <| fun (tail: byte[]) (shnum: uint16) (shoff: uint32) ->
            let header = Array.zeroCreate<byte> 64
            header.[0] <- 0x7fuy; header.[1] <- byte 'E'; header.[2] <- byte 'L'; header.[3] <- byte 'F'; header.[4] <- 2uy; header.[5] <- 1uy
            BitConverter.GetBytes(uint64 (shoff % 4096u)).CopyTo(header, 0x28)
            BitConverter.GetBytes(0x40us).CopyTo(header, 0x3A)
            BitConverter.GetBytes(shnum % 64us).CopyTo(header, 0x3C)
            let bytes = Array.append header (if isNull tail then [||] else tail)
            LibTorchLoader.weakenVersionNeed LibTorchLoader.NeededVersion bytes |> ignore

        test "the real library cut short or with its section tables scrambled never throws" {
            let original = File.ReadAllBytes(packageLibrary ())
            let rng = Random 7
            let shoff = int (BitConverter.ToUInt64(original, 0x28))
            // Cuts inside the header, the version tables and the section headers, where the parser reads.
            let cuts = [ yield! [ 0 .. 80 ]; for _ in 1 .. 60 do yield rng.Next original.Length; for _ in 1 .. 60 do yield shoff + rng.Next(original.Length - shoff) ]
            for cut in cuts do
                LibTorchLoader.weakenVersionNeed LibTorchLoader.NeededVersion original.[.. cut - 1] |> ignore
            for _ in 1 .. 200 do
                let b = Array.copy original
                for _ in 1 .. 8 do b.[shoff + rng.Next(original.Length - shoff)] <- byte (rng.Next 256)
                LibTorchLoader.weakenVersionNeed LibTorchLoader.NeededVersion b |> ignore
        }
    ]

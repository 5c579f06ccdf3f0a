module Research.Core.Tests.PcaFileTests

open System
open System.IO
open Expecto
open TorchSharp
open Research.Core
open Research.Core.Tests.IdxTests

/// Bit patterns of a tensor's values, so equality means bit-identical.
let private bits (t: torch.Tensor) =
    use c = t.to_type(torch.float64).cpu()
    c.data<float>().ToArray() |> Array.map BitConverter.DoubleToInt64Bits

let private fitted () =
    torch.manual_seed 3L |> ignore
    use x = torch.randn(80L, 6L).matmul(torch.randn(6L, 6L))
    Pca.fit x 3

let tests =
    testList "PcaFile" [
        test "save then load gives the same fit, bit for bit, and the same transform" {
            use dir = new TempDir()
            let path = dir.File "model.pca"
            let fit = fitted ()
            PcaFile.save path fit
            let loaded = PcaFile.load path
            Expect.equal (bits loaded.Mean) (bits fit.Mean) "Mean"
            Expect.equal (bits loaded.Components) (bits fit.Components) "Components"
            Expect.equal loaded.Mean.dtype torch.float32 "Mean stays float32"
            Expect.equal loaded.Components.shape [| 3L; 6L |] "Components shape"
            Expect.equal (Array.map BitConverter.DoubleToInt64Bits loaded.ExplainedVariance) (Array.map BitConverter.DoubleToInt64Bits fit.ExplainedVariance) "ExplainedVariance"
            Expect.equal loaded.ExplainedVarianceRatio fit.ExplainedVarianceRatio "ExplainedVarianceRatio"
            Expect.equal loaded.TotalVariance fit.TotalVariance "TotalVariance"
            use x = torch.randn(10L, 6L)
            Expect.equal (bits (Pca.transform loaded x)) (bits (Pca.transform fit x)) "Transform"
            Expect.equal (Directory.GetFiles dir.Path |> Array.map Path.GetFileName) [| "model.pca" |] "no temporary file"
        }

        test "another model's file, a truncated or a damaged one, a wrong layout: InvalidDataException" {
            use dir = new TempDir()
            let path = dir.File "model.pca"
            PcaFile.save path (fitted ())
            let bytes = File.ReadAllBytes path
            let other = dir.File "other"
            let check (what: string) (content: byte[]) (expected: string) =
                File.WriteAllBytes(other, content)
                let e = expectInvalid what (fun () -> PcaFile.load other)
                Expect.stringContains e.Message expected what
            for n in 0 .. 7 .. bytes.Length - 1 do check $"{n} bytes" bytes.[.. n - 1] ""
            for at in [ 0; 9; 30; bytes.Length / 2; bytes.Length - 1 ] do
                let damaged = Array.copy bytes
                damaged.[at] <- damaged.[at] ^^^ 0x10uy
                check $"flip at {at}" damaged ""
            check "not a checkpoint" "hello"B "magic"
            Checkpoint.save other { Kind = "vae"; Options = []; Tensors = [ "w", torch.zeros(2L) ] }
            let e = expectInvalid "a VAE file" (fun () -> PcaFile.load other)
            Expect.stringContains e.Message "kind \"vae\"" "names the kind found"
            let layout (options: (string * string) list) (tensors: (string * torch.Tensor) list) (expected: string) =
                Checkpoint.save other { Kind = PcaFile.Kind; Options = options; Tensors = tensors }
                let e = expectInvalid expected (fun () -> PcaFile.load other)
                Expect.stringContains e.Message expected expected
            let opts = [ "Features", "2"; "ComponentCount", "1" ]
            let good () =
                [ "Mean", torch.zeros(2L); "Components", torch.ones(1L, 2L); "ExplainedVariance", torch.ones(1L, dtype = torch.float64)
                  "ExplainedVarianceRatio", torch.ones(1L, dtype = torch.float64); "TotalVariance", torch.ones(1L, dtype = torch.float64) ]
            layout [ "Features", "2" ] (good ()) "lacks the option 'ComponentCount'"
            layout [ "Features", "2"; "ComponentCount", "3" ] (good ()) "ComponentCount = 3"
            layout opts (good () |> List.tail) "expected [Mean"
            layout opts (("Mean", torch.zeros(3L)) :: List.tail (good ())) "tensor Mean is Float32 [|3L|]"
            layout opts (("Mean", torch.zeros(2L, dtype = torch.float64)) :: List.tail (good ())) "tensor Mean is Float64"
            layout opts (("Mean", torch.tensor([| nan; 0.0 |], dtype = torch.float32)) :: List.tail (good ())) "NaN"
            layout opts (good () |> List.map (fun (n, t) -> if n = "ExplainedVariance" then n, torch.tensor([| -1.0 |]) else n, t)) "negative"
        }

        test "bad arguments are ArgumentException; a missing file FileNotFoundException" {
            for name, f in
                [ "null path (save)", (fun () -> PcaFile.save null (fitted ()))
                  "empty path (save)", (fun () -> PcaFile.save "" (fitted ()))
                  "null path (load)", (fun () -> PcaFile.load null |> ignore)
                  "blank path (load)", (fun () -> PcaFile.load " " |> ignore) ] do
                let e = Expect.throwsC f id
                Expect.isTrue (e :? ArgumentException) $"{name}: ArgumentException, got {e.GetType().Name}"
            use dir = new TempDir()
            match Expect.throwsC (fun () -> PcaFile.load (dir.File "absent.pca") |> ignore) id with
            | :? FileNotFoundException -> ()
            | other -> failtestf "expected FileNotFoundException, got %O" other
        }
    ]

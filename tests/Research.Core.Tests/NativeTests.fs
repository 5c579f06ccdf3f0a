module Research.Core.Tests.NativeTests

open System.IO
open Expecto
open TorchSharp
open Research.Core

let tests =
    testList "Native" [
        test "the libtorch loaded is the package's 2.10, not a system copy" {
            let libs = Native.loadedLibraries ()
            let torchCpu = libs |> List.filter (fun p -> Path.GetFileName p = "libtorch_cpu.so")
            Expect.hasLength torchCpu 1 $"exactly one libtorch_cpu.so is mapped: %A{libs}"
            let path = torchCpu.Head
            Expect.isFalse (path.StartsWith "/usr/") $"libtorch_cpu.so comes from the build output, not the system: {path}"
            let sharp = libs |> List.find (fun p -> Path.GetFileName p = "libLibTorchSharp.so")
            Expect.equal (Path.GetDirectoryName sharp) (Path.GetDirectoryName path) "LibTorchSharp and libtorch sit side by side"
            Expect.isTrue (path.StartsWith System.AppContext.BaseDirectory) $"libtorch_cpu.so is the copy in this app's output: {path}"
            // The deps file names the libtorch package that output copy came from.
            let deps = File.ReadAllText(Path.Combine(System.AppContext.BaseDirectory, "Research.Core.Tests.deps.json"))
            Expect.stringContains deps ("libtorch-cpu-linux-x64/" + Native.ExpectedLibTorchVersion + ".0") "the output's libtorch package is 2.10"
            Expect.stringStarts torch.__version__ Native.ExpectedLibTorchVersion "TorchSharp reports libtorch 2.10"
            use t = torch.ones(3L) * 2.0f
            Expect.equal (t.sum().item<float32>()) 6.0f "a tensor computes"
        }
        test "matrix products are right on whichever MKL code path was chosen (float32 against float64)" {
            use g = new torch.Generator(5UL)
            // MNIST-layer shapes, so that MKL takes its blocked, multithreaded kernels.
            use a = torch.randn([| 256L; 784L |], generator = g)
            use b = torch.randn([| 784L; 400L |], generator = g)
            use product = a.matmul(b).to_type(torch.float64)
            use exact = a.to_type(torch.float64).matmul(b.to_type(torch.float64))
            use err = (product - exact).abs().max()
            // Each entry sums 784 products of N(0,1) values (size about 28); float32 rounding gives ~1e-5.
            Expect.isLessThan (err.item<float> ()) 1e-3 $"largest error, path {Native.mklCodePath ()}"
        }
    ]

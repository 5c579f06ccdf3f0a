module Research.Core.Tests.StateDictFileTests

open System
open System.IO
open Expecto
open TorchSharp
open Research.Core

let private written (tensors: (string * torch.Tensor) list) =
    use ms = new MemoryStream()
    StateDictFile.write ms tensors
    ms.ToArray()

let private readBack (bytes: byte[]) =
    use ms = new MemoryStream(bytes)
    StateDictFile.read ms "<test>"

let private equalExactly (a: torch.Tensor) (b: torch.Tensor) =
    a.dtype = b.dtype && a.shape = b.shape && (use eq = a.eq(b).all() in eq.item<bool>())

let tests =
    testList "StateDictFile" [
        test "what write writes, read reads back bit for bit, in order, whatever the shape and dtype" {
            use g = new torch.Generator(7UL)
            let tensors =
                [ "encoder.0.weight", torch.randn([| 5L; 3L |], generator = g)
                  "a scalar", torch.tensor(2.5f)
                  "empty", torch.zeros([| 0L; 4L |])
                  "float64 ünïcode", torch.randn([| 2L; 3L; 4L |], dtype = torch.float64, generator = g)
                  "big dims", torch.ones([| 1L; 300L |]) ]
            let back = readBack (written tensors)
            Expect.equal (List.map fst back) (List.map fst tensors) "names in order"
            for (_, a), (name, b) in List.zip tensors back do
                Expect.isTrue (equalExactly a b) $"{name}: dtype, shape and values"
            for _, t in back @ tensors do t.Dispose()
        }

        test "the file is a function of the tensors: two writes give the same bytes" {
            use t = torch.arange(6.0f).reshape(2L, 3L)
            Expect.sequenceEqual (written [ "w", t ]) (written [ "w", t ]) "same bytes"
        }

        test "a non-contiguous tensor is written as its values" {
            use t = torch.arange(6.0f).reshape(2L, 3L)
            use transposed = t.t()
            let back = readBack (written [ "w", transposed ])
            Expect.isTrue (equalExactly (transposed.contiguous()) (snd back.Head)) "values of the view"
            for _, b in back do b.Dispose()
        }

        test "write refuses what it cannot store, before writing anything" {
            use ints = torch.zeros([| 2L |], dtype = torch.int64)
            use f = torch.zeros([| 2L |])
            use ms = new MemoryStream()
            Expect.throwsT<ArgumentException> (fun () -> StateDictFile.write ms [ "i", ints ]) "int64"
            Expect.throwsT<ArgumentException> (fun () -> StateDictFile.write ms [ "x", f; "x", f ]) "duplicate name"
            Expect.equal ms.Length 0L "nothing written"
        }

        test "read refuses a zip archive that is not a state_dict" {
            use ms = new MemoryStream()
            do
                use zip = new Compression.ZipArchive(ms, Compression.ZipArchiveMode.Create, true)
                use s = zip.CreateEntry("archive/other.txt").Open()
                s.Write("hello"B, 0, 5)
            let message =
                try readBack (ms.ToArray()) |> ignore; "no exception"
                with :? InvalidDataException as e -> e.Message
            Expect.stringContains message "lacks archive/data.pkl" "names the missing record"
        }
    ]

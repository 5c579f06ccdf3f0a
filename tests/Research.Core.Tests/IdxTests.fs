module Research.Core.Tests.IdxTests

open System
open System.Buffers.Binary
open System.IO
open System.IO.Compression
open System.Threading.Tasks
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Research.Core

let private config n = { FsCheckConfig.defaultConfig with maxTest = n }

/// An IDX file of unsigned bytes, built by hand from the format's definition.
let idxBytes (dims: int[]) (data: byte[]) : byte[] =
    let header = Array.zeroCreate<byte> (4 + 4 * dims.Length)
    header.[2] <- 0x08uy
    header.[3] <- byte dims.Length
    dims |> Array.iteri (fun i d -> BinaryPrimitives.WriteInt32BigEndian(Span(header, 4 + 4 * i, 4), d))
    Array.append header data

let gzip (bytes: byte[]) : byte[] =
    use ms = new MemoryStream()
    do
        use z = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen = true)
        z.Write(bytes, 0, bytes.Length)
    ms.ToArray()

/// A read-only stream that hides its length and cannot seek, like a pipe or a network stream.
type NonSeekable(bytes: byte[]) =
    inherit MemoryStream(bytes, false)
    override _.CanSeek = false
    override _.Length = raise (NotSupportedException())
    override _.Position
        with get () = raise (NotSupportedException())
        and set _ = raise (NotSupportedException())
    override _.Seek(_, _) = raise (NotSupportedException())

/// A fresh folder under the temp directory, deleted by Dispose.
type TempDir() =
    let path = Path.Combine(Path.GetTempPath(), $"research-tests-{Guid.NewGuid():N}")
    do Directory.CreateDirectory path |> ignore
    member _.Path = path
    member _.File(name: string) = Path.Combine(path, name)
    interface IDisposable with
        member _.Dispose() = try Directory.Delete(path, true) with _ -> ()

/// Runs f on a worker with a time limit, returning its result or exception and the bytes it allocated,
/// so a test can tell a clean rejection from a crash, a hang or a huge allocation.
let guarded (f: unit -> 'a) : Result<'a, exn> * int64 =
    let task =
        Task.Run(fun () ->
            let before = GC.GetAllocatedBytesForCurrentThread()
            let r = try Ok(f ()) with e -> Error e
            r, GC.GetAllocatedBytesForCurrentThread() - before)
    if not (task.Wait(TimeSpan.FromSeconds 20.0)) then failtest "the reader did not finish within 20 s (hang)"
    task.Result

/// Asserts that f either succeeds or throws InvalidDataException, promptly and allocating under maxBytes.
let expectCleanOutcome (maxBytes: int64) (what: string) (f: unit -> 'a) =
    let r, allocated = guarded f
    match r with
    | Ok _ | Error(:? InvalidDataException) -> ()
    | Error e -> failtestf "%s: expected a valid parse or InvalidDataException, got %O" what e
    Expect.isLessThan allocated maxBytes $"{what}: bytes allocated"

let expectInvalid (what: string) (f: unit -> 'a) : InvalidDataException =
    Expect.throwsT<InvalidDataException> (f >> ignore) what
    try f () |> ignore; failwith "unreachable" with :? InvalidDataException as e -> e

/// One random edit of a file's bytes.
type Mutation =
    | Flip of position: int * mask: byte
    | Insert of position: int * value: byte
    | Delete of position: int

let mutate (bytes: byte[]) (m: Mutation) : byte[] =
    match m with
    | Flip(p, mask) when bytes.Length > 0 ->
        let b = Array.copy bytes
        b.[p % b.Length] <- b.[p % b.Length] ^^^ mask
        b
    | Insert(p, v) ->
        let p = p % (bytes.Length + 1)
        Array.concat [ bytes.[.. p - 1]; [| v |]; bytes.[p..] ]
    | Delete p when bytes.Length > 0 ->
        let p = p % bytes.Length
        Array.append bytes.[.. p - 1] bytes.[p + 1 ..]
    | _ -> bytes

let genMutation: Gen<Mutation> =
    let pos = Gen.choose (0, Int32.MaxValue - 1)
    let value = Gen.choose (0, 255) |> Gen.map byte
    let mask = Gen.choose (1, 255) |> Gen.map byte
    // Header bytes are where the interesting failures hide: aim half the edits at the first 16 bytes.
    let anyPos = Gen.oneof [ Gen.choose (0, 15); pos ]
    Gen.oneof [
        Gen.map2 (fun p m -> Flip(p, m)) anyPos mask
        Gen.map2 (fun p v -> Insert(p, v)) anyPos value
        Gen.map Delete anyPos
    ]

/// One to three edits.
let genEdits: Gen<Mutation list> =
    gen {
        let! k = Gen.choose (1, 3)
        return! Gen.listOfLength k genMutation
    }

let private genIdx: Gen<int[] * byte[]> =
    gen {
        let! rank = Gen.choose (1, 4)
        let! dims = Gen.arrayOfLength rank (Gen.choose (1, 6))
        let! data = Gen.arrayOfLength (Array.fold (*) 1 dims) (Gen.choose (0, 255) |> Gen.map byte)
        return dims, data
    }

/// The folder holding the real MNIST files: RESEARCH_MNIST_DIR if set, else the repository's data/mnist
/// (found by walking up to Research.sln), else this machine's shared /work/main/data/mnist.
let mnistDirectory () : string =
    let rec repoRoot (dir: DirectoryInfo) =
        if isNull dir then None
        elif File.Exists(Path.Combine(dir.FullName, "Research.sln")) then Some dir.FullName
        else repoRoot dir.Parent
    let candidates =
        [ Environment.GetEnvironmentVariable "RESEARCH_MNIST_DIR"
          match repoRoot (DirectoryInfo AppContext.BaseDirectory) with
          | Some root -> Path.Combine(root, "data", "mnist")
          | None -> null
          "/work/main/data/mnist" ]
        |> List.filter (fun d -> not (String.IsNullOrEmpty d))
    match candidates |> List.tryFind (fun d -> File.Exists(Path.Combine(d, "train-images-idx3-ubyte"))) with
    | Some d -> d
    | None ->
        failtestf "The MNIST files were not found (looked in %s). Run `dotnet fsi build.fsx data` at the repository root first."
            (String.Join(", ", candidates))

let private trainCounts = [| 5923; 6742; 5958; 6131; 5842; 5421; 5918; 6265; 5851; 5949 |]
let private testCounts = [| 980; 1135; 1032; 1010; 982; 892; 958; 1028; 974; 1009 |]

/// Writes a tiny MNIST-shaped split (n images of 28 × 28) under the given file names.
let private writeSplit (dir: TempDir) (imagesName: string) (labelsName: string) (images: byte[]) (labels: byte[]) (compress: bool) =
    let pack b = if compress then gzip b else b
    File.WriteAllBytes(dir.File imagesName, pack (idxBytes [| images.Length / 784; 28; 28 |] images))
    File.WriteAllBytes(dir.File labelsName, pack (idxBytes [| labels.Length |] labels))

let tests =
    testList "Idx" [
        testPropertyWithConfig (config 100) "raw and gzip files round-trip dimensions and data"
            (Prop.forAll (Arb.fromGen genIdx) (fun (dims, data) ->
                use dir = new TempDir()
                let raw = idxBytes dims data
                File.WriteAllBytes(dir.File "a", raw)
                File.WriteAllBytes(dir.File "b.idx", gzip raw)
                for label, parsed in
                    [ "raw file", Idx.read (dir.File "a")
                      "gzip file", Idx.read (dir.File "b.idx")
                      "raw non-seekable stream", Idx.readStream (new NonSeekable(raw))
                      "gzip non-seekable stream", Idx.readStream (new NonSeekable(gzip raw)) ] do
                    Expect.equal parsed.Dimensions dims $"{label}: dimensions"
                    Expect.equal parsed.Data data $"{label}: data"))

        test "every truncation of a valid file is InvalidDataException" {
            let raw = idxBytes [| 3; 4 |] (Array.init 12 byte)
            for bytes in [ raw; gzip raw ] do
                for n in 0 .. bytes.Length - 1 do
                    let cut = bytes.[.. n - 1]
                    expectInvalid $"{n} of {bytes.Length} bytes (seekable)" (fun () -> Idx.readStream (new MemoryStream(cut)))
                    |> ignore
                    expectInvalid $"{n} of {bytes.Length} bytes (non-seekable)" (fun () -> Idx.readStream (new NonSeekable(cut)))
                    |> ignore
        }

        testPropertyWithConfig (config 400) "random edits give a valid parse or InvalidDataException, promptly and cheaply"
            (Prop.forAll (Arb.fromGen (Gen.zip genIdx genEdits))
                (fun ((dims, data), edits) ->
                    let raw = idxBytes dims data
                    for name, original in [ "raw", raw; "gzip", gzip raw ] do
                        let edited = List.fold mutate original edits
                        expectCleanOutcome (4L <<< 20) $"{name} %A{edits}" (fun () -> Idx.readStream (new MemoryStream(edited)))
                        expectCleanOutcome (4L <<< 20) $"{name} %A{edits} (non-seekable)" (fun () -> Idx.readStream (new NonSeekable(edited)))))

        test "a header claiming 2^31 items on a 100-byte file fails fast without allocating them" {
            let body = Array.create 88 7uy
            let huge = idxBytes [| 65536; 32768 |] body // 2^31 items, more than any .NET array
            let large = idxBytes [| 1 <<< 30 |] (Array.create 92 7uy) // 1 GiB: allocatable, but not present
            for name, bytes in [ "2^31 items", huge; "2^30 items", large ] do
                Expect.equal bytes.Length 100 "the file is 100 bytes"
                for how, open' in
                    [ "raw", (fun () -> new MemoryStream(bytes) :> Stream)
                      "raw non-seekable", (fun () -> new NonSeekable(bytes) :> Stream)
                      "gzip", (fun () -> new MemoryStream(gzip bytes) :> Stream) ] do
                    let r, allocated = guarded (fun () -> Idx.readStream (open' ()))
                    match r with
                    | Error(:? InvalidDataException) -> ()
                    | other -> failtestf "%s %s: expected InvalidDataException, got %A" name how other
                    Expect.isLessThan allocated (4L <<< 20) $"{name} {how}: bytes allocated"
        }

        test "malformed headers are rejected with messages naming the file and the problem" {
            use dir = new TempDir()
            let check (name: string) (bytes: byte[]) (expected: string) =
                let path = dir.File name
                File.WriteAllBytes(path, bytes)
                let e = expectInvalid name (fun () -> Idx.read path)
                Expect.stringContains e.Message path $"{name}: the message names the file"
                Expect.stringContains e.Message expected $"{name}: the message says what is wrong"
            let good = idxBytes [| 2; 2 |] [| 1uy; 2uy; 3uy; 4uy |]
            check "magic" (Array.append [| 1uy; 0uy |] good.[2..]) "bad magic"
            check "float" (Array.concat [ good.[.. 1]; [| 0x0Duy |]; good.[3..] ]) "float32"
            check "rank0" [| 0uy; 0uy; 8uy; 0uy |] "0 dimensions"
            check "zero" (idxBytes [| 2; 0 |] [||]) "dimension 1 is 0"
            check "negative" (idxBytes [| -2; 2 |] [| 1uy; 2uy; 3uy; 4uy |]) "dimension 0 is -2"
            check "short" good.[.. good.Length - 2] "truncated"
            check "trailing" (Array.append good [| 0uy |]) "trailing"
            check "trailing.gz" (gzip (Array.append good [| 0uy |])) "trailing"
            check "short.gz" (gzip good.[.. good.Length - 2]) "truncated"
            check "cut-trailer.gz" (let z = gzip good in z.[.. z.Length - 3]) "gzip trailer"
            check "garbage.gz" (Array.append (gzip good) [| 1uy; 2uy; 3uy |]) "gzip"
            let missing = dir.File "nope"
            let e = Expect.throwsC (fun () -> Idx.read missing |> ignore) id
            match e with
            | :? FileNotFoundException as f -> Expect.equal f.FileName missing "FileNotFoundException names the path"
            | other -> failtestf "expected FileNotFoundException, got %O" other
        }

        test "MNIST loads from any of its file-name spellings, raw or gzip" {
            let images = Array.init (3 * 784) (fun i -> byte (i % 256))
            let labels = [| 0uy; 9uy; 4uy |]
            for imagesName, labelsName, compress in
                [ "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", false
                  "t10k-images.idx3-ubyte", "t10k-labels.idx1-ubyte", false
                  "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", true
                  "t10k-images.idx3-ubyte.gz", "t10k-labels.idx1-ubyte.gz", true ] do
                use dir = new TempDir()
                writeSplit dir imagesName labelsName images labels compress
                let x, y = Mnist.load dir.Path Mnist.Test
                use x = x
                Expect.equal x.shape [| 3L; 784L |] $"{imagesName}: shape"
                Expect.equal x.dtype torch.ScalarType.Float32 "float32"
                Expect.equal y [| 0; 9; 4 |] $"{labelsName}: labels"
                let a, y2 = Mnist.loadArrays dir.Path Mnist.Test
                Expect.equal y2 y "loadArrays labels"
                Expect.equal (Interop.toArray2D x) a "load and loadArrays agree"
                Expect.equal a.[0, 255] 1.0f "byte 255 is 1"
                Expect.equal a.[0, 51] (51.0f / 255.0f) "byte 51 is 51/255"
        }

        test "MNIST inconsistencies are InvalidDataException, missing files FileNotFoundException" {
            let images = Array.create (2 * 784) 0uy
            let expectBad what (setup: TempDir -> unit) (expected: string) =
                use dir = new TempDir()
                setup dir
                let e = expectInvalid what (fun () -> Mnist.load dir.Path Mnist.Train)
                Expect.stringContains e.Message expected $"{what}: message"
            expectBad "count mismatch" (fun d -> writeSplit d "train-images-idx3-ubyte" "train-labels-idx1-ubyte" images [| 1uy; 2uy; 3uy |] false) "3 labels for 2 images"
            expectBad "label 10" (fun d -> writeSplit d "train-images-idx3-ubyte" "train-labels-idx1-ubyte" images [| 1uy; 10uy |] false) "outside the digits"
            expectBad "image shape" (fun d ->
                File.WriteAllBytes(d.File "train-images-idx3-ubyte", idxBytes [| 2; 784 |] images)
                File.WriteAllBytes(d.File "train-labels-idx1-ubyte", idxBytes [| 2 |] [| 1uy; 2uy |])) "[n, 28, 28]"
            expectBad "labels rank" (fun d ->
                File.WriteAllBytes(d.File "train-images-idx3-ubyte", idxBytes [| 2; 28; 28 |] images)
                File.WriteAllBytes(d.File "train-labels-idx1-ubyte", idxBytes [| 2; 1 |] [| 1uy; 2uy |])) "1-D"
            use dir = new TempDir()
            File.WriteAllBytes(dir.File "train-images-idx3-ubyte", idxBytes [| 2; 28; 28 |] images)
            let e = Expect.throwsC (fun () -> Mnist.load dir.Path Mnist.Train |> ignore) id
            match e with
            | :? FileNotFoundException as f ->
                for name in [ "train-labels-idx1-ubyte"; "train-labels.idx1-ubyte"; "train-labels-idx1-ubyte.gz"; "train-labels.idx1-ubyte.gz" ] do
                    Expect.stringContains f.Message name "the message lists every name tried"
            | other -> failtestf "expected FileNotFoundException, got %O" other
        }

        test "the real MNIST files load with the known sizes, pixel range and label counts" {
            let dir = mnistDirectory ()
            for split, n, counts in [ Mnist.Train, 60000, trainCounts; Mnist.Test, 10000, testCounts ] do
                let x, y = Mnist.load dir split
                use x = x
                Expect.equal x.shape [| int64 n; 784L |] $"{split}: shape"
                Expect.equal y.Length n $"{split}: label count"
                Expect.equal (x.min().item<float32>()) 0.0f $"{split}: smallest pixel"
                Expect.equal (x.max().item<float32>()) 1.0f $"{split}: largest pixel"
                let histogram = Array.init 10 (fun d -> y |> Array.filter ((=) d) |> Array.length)
                Expect.equal (Array.sum histogram) n $"{split}: the histogram sums to the row count"
                Expect.equal histogram counts $"{split}: the published label counts"
            // Sum of raw bytes of the test images, from the file itself: checks the 1/255 scaling exactly.
            let x, _ = Mnist.load dir Mnist.Test
            use x = x
            use total = x.sum(``type`` = torch.ScalarType.Float64)
            Expect.floatClose { absolute = 0.0; relative = 1e-6 } (total.item<float>() * 255.0) 264923200.0 "pixel sum × 255"
            let a, y = Mnist.loadArrays dir Mnist.Test
            Expect.equal (Array2D.length1 a, Array2D.length2 a) (10000, 784) "loadArrays shape"
            Expect.equal y.Length 10000 "loadArrays labels"
            Expect.equal a (Interop.toArray2D x) "loadArrays equals load"
        }
    ]

module Research.Core.Tests.CheckpointTests

open System
open System.IO
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Research.Core
open Research.Core.Tests.IdxTests

let private config n = { FsCheckConfig.defaultConfig with maxTest = n }

/// CRC-32 computed bit by bit, independently of the library's table-driven one.
let crc32 (bytes: byte[]) : uint32 =
    let mutable c = 0xFFFFFFFFu
    for b in bytes do
        c <- c ^^^ uint32 b
        for _ in 1..8 do
            c <- if c &&& 1u <> 0u then (c >>> 1) ^^^ 0xEDB88320u else c >>> 1
    ~~~c

/// A checkpoint file assembled by hand from the documented layout; data may be shorter than the shape
/// says, to build lying files.
let layout (version: int) (kind: string) (options: (string * string) list) (tensors: (string * int * int64[] * byte[]) list) =
    use ms = new MemoryStream()
    do
        use w = new BinaryWriter(ms, UTF8Encoding(false), leaveOpen = true)
        let str (s: string) =
            let b = Encoding.UTF8.GetBytes s
            w.Write b.Length
            w.Write b
        w.Write "RSRCHCKP"B
        w.Write version
        str kind
        w.Write options.Length
        for k, v in options do
            str k
            str v
        w.Write tensors.Length
        for name, code, shape, data in tensors do
            str name
            w.Write code
            w.Write shape.Length
            for d in shape do w.Write d
            w.Write data
    let body = ms.ToArray()
    Array.append body (BitConverter.GetBytes(crc32 body))

/// Text mixing control characters, ASCII, accented Latin, CJK and emoji (surrogate pairs).
let genText: Gen<string> =
    let codePoint =
        Gen.oneof [ Gen.choose (0, 0x1F); Gen.choose (0x20, 0x7E); Gen.choose (0xA0, 0x2FF); Gen.choose (0x4E00, 0x4FFF); Gen.choose (0x1F600, 0x1F64F) ]
    gen {
        let! n = Gen.choose (0, 12)
        let! cps = Gen.arrayOfLength n codePoint
        return String.Join("", cps |> Array.map Char.ConvertFromUtf32)
    }

/// A tensor description: name, float64?, shape, and element bit patterns (as int64, truncated for float32).
type TensorSpec = { Name: string; Double: bool; Shape: int64[]; Bits: int64[] }

let private genBits: Gen<int64> =
    Gen.map4 (fun a b c d -> (int64 a <<< 48) ||| (int64 b <<< 32) ||| (int64 c <<< 16) ||| int64 d)
        (Gen.choose (0, 0xFFFF)) (Gen.choose (0, 0xFFFF)) (Gen.choose (0, 0xFFFF)) (Gen.choose (0, 0xFFFF))

let private genTensor: Gen<TensorSpec> =
    gen {
        let! name = genText
        let! double = Gen.elements [ false; true ]
        let! rank = Gen.choose (0, 4)
        let! shape = Gen.arrayOfLength rank (Gen.choose (0, 4) |> Gen.map int64)
        let! bits = Gen.arrayOfLength (int (Array.fold (*) 1L shape)) genBits
        return { Name = name; Double = double; Shape = shape; Bits = bits }
    }

let private genSpec: Gen<string * (string * string) list * TensorSpec list> =
    gen {
        let! kind = genText
        let! options = Gen.listOf (Gen.zip genText genText)
        let! tensors = Gen.choose (0, 5) |> Gen.bind (fun n -> Gen.listOfLength n genTensor)
        return kind, List.distinctBy fst options, List.distinctBy (fun t -> t.Name) tensors
    }

let private toTensor (t: TensorSpec) : torch.Tensor =
    if t.Double then torch.tensor(t.Bits |> Array.map BitConverter.Int64BitsToDouble, ReadOnlySpan t.Shape)
    else torch.tensor(t.Bits |> Array.map (int32 >> BitConverter.Int32BitsToSingle), ReadOnlySpan t.Shape)

let private build (kind, options, tensors: TensorSpec list) : Checkpoint.Checkpoint =
    { Kind = kind; Options = options; Tensors = tensors |> List.map (fun t -> t.Name, toTensor t) }

let private dispose (c: Checkpoint.Checkpoint) =
    for _, t in c.Tensors do t.Dispose()

/// Asserts that a loaded checkpoint holds exactly the spec: kind, options in order, tensor names,
/// dtypes, shapes and every bit of every element.
let private expectSame (kind, options, tensors: TensorSpec list) (c: Checkpoint.Checkpoint) (how: string) =
    Expect.equal c.Kind kind $"{how}: kind"
    Expect.equal c.Options options $"{how}: options"
    Expect.equal (c.Tensors |> List.map fst) (tensors |> List.map (fun t -> t.Name)) $"{how}: tensor names"
    for (name, t), spec in List.zip c.Tensors tensors do
        Expect.equal t.shape spec.Shape $"{how}: shape of {name}"
        Expect.equal t.device_type DeviceType.CPU $"{how}: {name} is on the requested device"
        if spec.Double then
            Expect.equal t.dtype torch.ScalarType.Float64 $"{how}: dtype of {name}"
            let bits = if t.numel () = 0L then [||] else t.data<float>().ToArray() |> Array.map BitConverter.DoubleToInt64Bits
            Expect.equal bits spec.Bits $"{how}: bits of {name}"
        else
            Expect.equal t.dtype torch.ScalarType.Float32 $"{how}: dtype of {name}"
            let bits = if t.numel () = 0L then [||] else t.data<float32>().ToArray() |> Array.map (BitConverter.SingleToInt32Bits >> int64)
            Expect.equal bits (spec.Bits |> Array.map (int32 >> int64)) $"{how}: bits of {name}"

let private toBytes (c: Checkpoint.Checkpoint) =
    use ms = new MemoryStream()
    Checkpoint.write ms c
    ms.ToArray()

/// A small valid checkpoint for the truncation and corruption tests.
let private small () : Checkpoint.Checkpoint =
    { Kind = "vae"
      Options = [ "latent", "2"; "名前", "ünïcode ✓" ]
      Tensors = [ "w", torch.arange(6.0f).reshape(2L, 3L); "b", torch.tensor(0.5) ] }

/// A writable stream over another that throws IOException once more than failAfter bytes are written.
type Faulty(inner: Stream, failAfter: int64) =
    inherit Stream()
    let mutable written = 0L
    override _.CanRead = false
    override _.CanSeek = false
    override _.CanWrite = true
    override _.Length = inner.Length
    override _.Position
        with get () = written
        and set _ = raise (NotSupportedException())
    override _.Flush() = inner.Flush()
    override _.Read(_, _, _) = raise (NotSupportedException())
    override _.Seek(_, _) = raise (NotSupportedException())
    override _.SetLength _ = raise (NotSupportedException())
    override _.Write(buffer: byte[], offset: int, count: int) =
        if written + int64 count > failAfter then
            let ok = int (failAfter - written)
            inner.Write(buffer, offset, ok)
            written <- failAfter
            raise (IOException $"injected fault after {failAfter} bytes")
        inner.Write(buffer, offset, count)
        written <- written + int64 count
    override _.Dispose(disposing: bool) =
        if disposing then inner.Dispose()
        base.Dispose disposing

let tests =
    testList "Checkpoint" [
        test "the reference CRC-32 gives the standard check value" {
            Expect.equal (crc32 "123456789"B) 0xCBF43926u "CRC-32 of \"123456789\""
        }

        testPropertyWithConfig (config 100) "random checkpoints round-trip exactly through streams and files"
            (Prop.forAll (Arb.fromGen genSpec) (fun spec ->
                let kind, _, _ = spec
                let c = build spec
                try
                    let bytes = toBytes c
                    let viaStream = Checkpoint.read (new MemoryStream(bytes)) kind torch.CPU
                    expectSame spec viaStream "seekable stream"
                    dispose viaStream
                    let viaPipe = Checkpoint.read (new NonSeekable(bytes)) kind torch.CPU
                    expectSame spec viaPipe "non-seekable stream"
                    dispose viaPipe
                    use dir = new TempDir()
                    let path = dir.File "model.ckpt"
                    Checkpoint.save path c
                    Expect.equal (File.ReadAllBytes path) bytes "save writes what write writes"
                    let viaFile = Checkpoint.load path kind torch.CPU
                    expectSame spec viaFile "file"
                    dispose viaFile
                finally
                    dispose c))

        test "scalars and zero-size tensors keep their shapes" {
            let spec =
                "k", [],
                [ { Name = "scalar"; Double = false; Shape = [||]; Bits = [| 0x3F800000L |] }
                  { Name = "empty"; Double = false; Shape = [| 0L |]; Bits = [||] }
                  { Name = "empty3d"; Double = true; Shape = [| 3L; 0L; 2L |]; Bits = [||] }
                  { Name = "scalar64"; Double = true; Shape = [||]; Bits = [| BitConverter.DoubleToInt64Bits Math.PI |] } ]
            let c = build spec
            let back = Checkpoint.read (new MemoryStream(toBytes c)) "k" torch.CPU
            expectSame spec back "round trip"
            dispose c
            dispose back
        }

        test "the file follows the documented layout and ends with the CRC-32 of the rest" {
            let c = small ()
            let bytes = toBytes c
            dispose c
            let body = bytes.[.. bytes.Length - 5]
            Expect.equal (BitConverter.ToUInt32(bytes, bytes.Length - 4)) (crc32 body) "trailing CRC-32"
            let floats (xs: float32[]) = xs |> Array.collect BitConverter.GetBytes
            let expected =
                layout 1 "vae" [ "latent", "2"; "名前", "ünïcode ✓" ]
                    [ "w", 1, [| 2L; 3L |], floats [| 0.0f; 1.0f; 2.0f; 3.0f; 4.0f; 5.0f |]
                      "b", 2, [||], BitConverter.GetBytes 0.5 ]
            Expect.equal bytes expected "byte-for-byte the documented layout"
        }

        test "every truncation is InvalidDataException" {
            let c = small ()
            let bytes = toBytes c
            dispose c
            for n in 0 .. bytes.Length - 1 do
                let cut = bytes.[.. n - 1]
                expectInvalid $"{n} of {bytes.Length} bytes" (fun () -> Checkpoint.read (new MemoryStream(cut)) "vae" torch.CPU) |> ignore
                expectInvalid $"{n} of {bytes.Length} bytes (non-seekable)" (fun () -> Checkpoint.read (new NonSeekable(cut)) "vae" torch.CPU)
                |> ignore
        }

        testPropertyWithConfig (config 400) "a byte flipped, inserted or deleted anywhere is InvalidDataException"
            (Prop.forAll (Arb.fromGen genMutation) (fun edit ->
                let c = small ()
                let bytes = mutate (toBytes c) edit
                dispose c
                for how, open' in
                    [ "seekable", (fun () -> new MemoryStream(bytes) :> Stream)
                      "non-seekable", (fun () -> new NonSeekable(bytes) :> Stream) ] do
                    let r, allocated = guarded (fun () -> Checkpoint.read (open' ()) "vae" torch.CPU)
                    match r with
                    | Error(:? InvalidDataException) -> ()
                    | Ok loaded ->
                        dispose loaded
                        failtestf "%A (%s) was accepted" edit how
                    | Error e -> failtestf "%A (%s): expected InvalidDataException, got %O" edit how e
                    Expect.isLessThan allocated (4L <<< 20) $"{how}: bytes allocated"))

        test "a lying size fails before allocating it" {
            let lies =
                [ "1 GiB tensor", layout 1 "k" [] [ "w", 1, [| 1L <<< 28 |], Array.zeroCreate 16 ]
                  "overflowing shape", layout 1 "k" [] [ "w", 1, [| 1L <<< 40; 1L <<< 40 |], [||] ]
                  "negative dimension", layout 1 "k" [] [ "w", 1, [| 2L; -1L |], [||] ]
                  "huge string", (let b = layout 1 "k" [] [] in BitConverter.GetBytes(0x7FFFFFF0).CopyTo(b, 12); b)
                  "huge option count", (let b = layout 1 "" [] [] in BitConverter.GetBytes(Int32.MaxValue).CopyTo(b, 16); b)
                  "negative tensor count", (let b = layout 1 "" [] [] in BitConverter.GetBytes(-1).CopyTo(b, 20); b)
                  "rank 1000", layout 1 "k" [] [ "w", 1, Array.zeroCreate 1000, [||] ]
                  "dtype 7", layout 1 "k" [] [ "w", 7, [||], Array.zeroCreate 4 ] ]
            for name, bytes in lies do
                for how, open' in
                    [ "seekable", (fun () -> new MemoryStream(bytes) :> Stream)
                      "non-seekable", (fun () -> new NonSeekable(bytes) :> Stream) ] do
                    let r, allocated = guarded (fun () -> Checkpoint.read (open' ()) "k" torch.CPU)
                    match r with
                    | Error(:? InvalidDataException) -> ()
                    | other -> failtestf "%s (%s): expected InvalidDataException, got %A" name how other
                    Expect.isLessThan allocated (4L <<< 20) $"{name} ({how}): bytes allocated"
        }

        test "duplicate names and trailing bytes in an otherwise valid file are rejected" {
            let dupTensor = layout 1 "k" [] [ "w", 1, [||], Array.zeroCreate 4; "w", 1, [||], Array.zeroCreate 4 ]
            let dupOption = layout 1 "k" [ "a", "1"; "a", "2" ] []
            let trailing = Array.append (layout 1 "k" [] []) [| 0uy |]
            for name, bytes, expected in
                [ "duplicate tensor", dupTensor, "tensor \"w\" appears more than once"
                  "duplicate option", dupOption, "option \"a\" appears more than once"
                  "trailing byte", trailing, "after the checksum" ] do
                let e = expectInvalid name (fun () -> Checkpoint.read (new MemoryStream(bytes)) "k" torch.CPU)
                Expect.stringContains e.Message expected $"{name}: message"
            let ok = Checkpoint.read (new MemoryStream(layout 1 "k" [] [])) "k" torch.CPU
            Expect.isEmpty ok.Tensors "a hand-built empty checkpoint reads"
        }

        test "the wrong kind and a newer version are named in the message" {
            use dir = new TempDir()
            let path = dir.File "m.ckpt"
            let c = small ()
            Checkpoint.save path c
            dispose c
            let e = expectInvalid "wrong kind" (fun () -> Checkpoint.load path "autoencoder" torch.CPU)
            Expect.stringContains e.Message "\"autoencoder\"" "names the expected kind"
            Expect.stringContains e.Message "\"vae\"" "names the actual kind"
            Expect.stringContains e.Message path "names the file"
            let newer = File.ReadAllBytes path
            BitConverter.GetBytes(Checkpoint.FormatVersion + 1).CopyTo(newer, 8)
            File.WriteAllBytes(path, newer)
            let e = expectInvalid "newer version" (fun () -> Checkpoint.load path "vae" torch.CPU)
            Expect.stringContains e.Message $"version {Checkpoint.FormatVersion + 1}" "names the file's version"
            Expect.stringContains e.Message $"version {Checkpoint.FormatVersion}," "names the supported version"
            let e = expectInvalid "bad magic" (fun () -> Checkpoint.read (new MemoryStream("NOTACKPT\000\000\000\000"B)) "vae" torch.CPU)
            Expect.stringContains e.Message "magic" "says the magic is wrong"
            let missing = dir.File "absent.ckpt"
            match Expect.throwsC (fun () -> Checkpoint.load missing "vae" torch.CPU |> ignore) id with
            | :? FileNotFoundException as f -> Expect.equal f.FileName missing "FileNotFoundException names the path"
            | other -> failtestf "expected FileNotFoundException, got %O" other
        }

        test "write rejects what it cannot store, before writing anything" {
            let cases: (string * Checkpoint.Checkpoint) list =
                [ "int64 tensor", { Kind = "k"; Options = []; Tensors = [ "i", torch.arange(3L) ] }
                  "duplicate tensor", { Kind = "k"; Options = []; Tensors = [ "a", torch.zeros(1L); "a", torch.zeros(1L) ] }
                  "duplicate option", { Kind = "k"; Options = [ "a", "1"; "a", "2" ]; Tensors = [] }
                  "unpaired surrogate", { Kind = String([| 'k'; char 0xD800 |]); Options = []; Tensors = [] }
                  "null kind", { Kind = null; Options = []; Tensors = [] }
                  "over-long string", { Kind = String('x', Checkpoint.MaxStringBytes + 1); Options = []; Tensors = [] } ]
            for name, c in cases do
                use ms = new MemoryStream()
                let e = try Checkpoint.write ms c; failtestf "%s: write did not throw" name with e -> e
                Expect.isTrue (e :? ArgumentException) $"{name}: ArgumentException (or a subclass), got {e.GetType().Name}"
                Expect.equal ms.Length 0L $"{name}: nothing written"
                dispose c
        }

        test "a fault mid-save leaves the previous file byte-identical and no temporary file" {
            use dir = new TempDir()
            let path = dir.File "model.ckpt"
            let old = small ()
            Checkpoint.save path old
            dispose old
            let before = File.ReadAllBytes path
            let replacement: Checkpoint.Checkpoint =
                { Kind = "vae"; Options = [ "latent", "3" ]; Tensors = [ "w", torch.ones(50L, 50L) ] }
            let total = (toBytes replacement).LongLength
            for failAfter in [ 0L; 7L; 100L; total / 2L; total - 1L ] do
                let openFaulty p = new Faulty(new FileStream(p, FileMode.CreateNew), failAfter) :> Stream
                Expect.throwsT<IOException> (fun () -> Checkpoint.saveWith openFaulty path replacement) $"fault after {failAfter} bytes"
                Expect.equal (File.ReadAllBytes path) before $"fault after {failAfter}: the old file is byte-identical"
                Expect.equal (Directory.GetFiles dir.Path |> Array.map Path.GetFileName) [| "model.ckpt" |] $"fault after {failAfter}: no temp file"
                let loaded = Checkpoint.load path "vae" torch.CPU
                Expect.equal loaded.Options [ "latent", "2"; "名前", "ünïcode ✓" ] "the old checkpoint still loads"
                dispose loaded
            // A fault with no previous file leaves nothing at all.
            let fresh = dir.File "fresh.ckpt"
            let openFaulty p = new Faulty(new FileStream(p, FileMode.CreateNew), 100L) :> Stream
            Expect.throwsT<IOException> (fun () -> Checkpoint.saveWith openFaulty fresh replacement) "fault on a new file"
            Expect.equal (Directory.GetFiles dir.Path |> Array.map Path.GetFileName) [| "model.ckpt" |] "no partial new file"
            // Invalid input is rejected before the old file is touched.
            let e = Expect.throwsC (fun () -> Checkpoint.save path { replacement with Kind = null }) id
            Expect.isTrue (e :? ArgumentException) $"invalid checkpoint: ArgumentException, got {e.GetType().Name}"
            Expect.equal (File.ReadAllBytes path) before "the old file survives invalid input"
            // And an uninterrupted save replaces it.
            Checkpoint.save path replacement
            let loaded = Checkpoint.load path "vae" torch.CPU
            Expect.equal (snd loaded.Tensors.Head).shape [| 50L; 50L |] "the new checkpoint replaced the old"
            Expect.equal (Directory.GetFiles dir.Path |> Array.map Path.GetFileName) [| "model.ckpt" |] "still no temp file"
            dispose loaded
            dispose replacement
        }
    ]

module Research.Core.Tests.NpyTests

open System
open System.Buffers.Binary
open System.IO
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Research.Core
open Research.Core.Tests.IdxTests

let private config n = { FsCheckConfig.defaultConfig with maxTest = n }

/// A .npy file built by hand from the format's definition (NEP 1): any version, header text and payload.
let npyBytes (major: byte) (header: string) (payload: byte[]) : byte[] =
    let text = (if major = 3uy then Encoding.UTF8 else Encoding.Latin1).GetBytes header
    let length =
        if major = 1uy then BitConverter.GetBytes(uint16 text.Length) else BitConverter.GetBytes(uint32 text.Length)
    Array.concat [ [| 0x93uy; byte 'N'; byte 'U'; byte 'M'; byte 'P'; byte 'Y'; major; 0uy |]; length; text; payload ]

let private dict (descr: string) (fortran: bool) (shape: string) =
    let order = if fortran then "True" else "False"
    $"{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}\n"

/// Little-endian bytes of float32 values.
let private f4 (values: float32[]) =
    values |> Array.collect (fun v -> let b = Array.zeroCreate 4 in BinaryPrimitives.WriteSingleLittleEndian(Span b, v); b)

let private f8 (values: float[]) =
    values |> Array.collect (fun v -> let b = Array.zeroCreate 8 in BinaryPrimitives.WriteDoubleLittleEndian(Span b, v); b)

/// The bit patterns of a float32 matrix, so NaN payloads and -0 count.
let private bits (a: float32[,]) = a |> Array2D.map BitConverter.SingleToInt32Bits

let private read (bytes: byte[]) = Npy.readArrayStream (new MemoryStream(bytes))

/// Random float32 values including the awkward ones: ±0, ±∞, NaN, subnormals, extremes.
let private genFloat: Gen<float32> =
    Gen.frequency [
        6, Gen.choose (-1000000, 1000000) |> Gen.map (fun i -> float32 i / 997.0f)
        2, Gen.choose (Int32.MinValue, Int32.MaxValue) |> Gen.map BitConverter.Int32BitsToSingle
        1, Gen.elements [ 0.0f; -0.0f; Single.PositiveInfinity; Single.NegativeInfinity; Single.NaN; Single.Epsilon
                          Single.MaxValue; Single.MinValue ] ]

let private genMatrix: Gen<float32[,]> =
    gen {
        let! rows = Gen.choose (0, 7)
        let! columns = Gen.choose (0, 7)
        let! values = Gen.arrayOfLength (rows * columns) genFloat
        return Array2D.init rows columns (fun i j -> values.[i * columns + j])
    }

let private written (a: float32[,]) =
    use ms = new MemoryStream()
    let rows, columns = Array2D.length1 a, Array2D.length2 a
    let flat = Array.init (rows * columns) (fun k -> a.[k / columns, k % columns])
    Npy.writeStream ms rows columns (ReadOnlySpan flat)
    ms.ToArray()

/// Header-like text from .npy tokens, some of them wrong, to reach every branch of the header parser.
let private genHeaderText: Gen<string> =
    let token =
        Gen.elements [ "{"; "}"; "("; ")"; "["; "]"; ","; ":"; " "; "\n"; "'descr'"; "'fortran_order'"; "'shape'"
                       "'<f4'"; "'<f8'"; "'|u1'"; "'<i8'"; "'>f4'"; "True"; "False"; "None"; "3"; "0"; "-1"; "4L"
                       "99999999999999999999"; "'"; "\""; "\\"; "x"; "((((("; "é"; "\000" ]
    gen {
        let! n = Gen.choose (0, 30)
        let! parts = Gen.listOfLength n token
        return String.Concat parts
    }

let tests =
    testList "Npy" [
        testPropertyWithConfig (config 200) "write then read gives back every bit, NaN payloads and -0 included"
            (Prop.forAll (Arb.fromGen genMatrix) (fun a ->
                Expect.equal (bits (read (written a))) (bits a) "float32[,] round trip"
                use t = Npy.readStream (new MemoryStream(written a))
                Expect.equal t.shape [| int64 (Array2D.length1 a); int64 (Array2D.length2 a) |] "tensor shape"
                Expect.equal (bits (Interop.toArray2D t)) (bits a) "tensor round trip"))

        test "the header is NumPy's: version 1.0, sorted keys, data at a multiple of 64 bytes, a final newline" {
            for rows, columns in [ 0, 0; 1, 1; 3, 4; 60000, 784; Int32.MaxValue, 1; 1, Int32.MaxValue ] do
                let h = Npy.headerBytes rows columns
                Expect.equal (h.Length % 64) 0 $"({rows}, {columns}): data start at a multiple of 64"
                Expect.equal h.[6..7] [| 1uy; 0uy |] "version 1.0"
                Expect.equal (int (BinaryPrimitives.ReadUInt16LittleEndian(ReadOnlySpan(h, 8, 2)))) (h.Length - 10) "header length"
                let text = Encoding.Latin1.GetString(h, 10, h.Length - 10)
                Expect.stringStarts text $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {columns}), }}" "the dict"
                Expect.stringEnds text " \n" "padded with spaces and a newline"
            Expect.equal (Npy.headerBytes 3 4).Length 128 "NumPy 1.24's header for (3, 4) is 128 bytes (room for 21 digits)"
        }

        test "versions 1.0, 2.0 and 3.0, float32, float64 and uint8, C and Fortran order" {
            // 2 × 3, row-major: 0 1 2 / 3 4 5 scaled; Fortran order stores the columns: 0 3 1 4 2 5.
            let c = [| 0; 1; 2; 3; 4; 5 |]
            let f = [| 0; 3; 1; 4; 2; 5 |]
            let expected = Array2D.init 2 3 (fun i j -> float32 (3 * i + j))
            for major in [ 1uy; 2uy; 3uy ] do
                for fortran, order in [ false, c; true, f ] do
                    let check (descr: string) (payload: byte[]) (wanted: float32[,]) =
                        let a = read (npyBytes major (dict descr fortran "(2, 3)") payload)
                        Expect.equal a wanted $"v{major} {descr} fortran={fortran}"
                    check "<f4" (f4 (order |> Array.map (fun k -> float32 k))) expected
                    check "<f8" (f8 (order |> Array.map float)) expected
                    check "|u1" (order |> Array.map (fun k -> byte (k * 50))) (expected |> Array2D.map (fun v -> v * 50.0f))
            // uint8 values are the numbers 0–255, not scaled.
            Expect.equal (read (npyBytes 1uy (dict "|u1" false "(1, 2)") [| 0uy; 255uy |])) (array2D [ [ 0.0f; 255.0f ] ]) "uint8 0 and 255"
            // float64 is rounded to the nearest float32.
            let a = read (npyBytes 1uy (dict "<f8" false "(1, 3)") (f8 [| 0.1; 1e300; -1e-300 |]))
            Expect.equal (bits a) (bits (array2D [ [ 0.1f; Single.PositiveInfinity; -0.0f ] ])) "float64 rounded to float32"
        }

        test "header spellings NumPy accepts: any key order, double quotes, no trailing comma, 3L, (2,3) and zero rows" {
            let v = f4 [| 1.0f; 2.0f; 3.0f; 4.0f; 5.0f; 6.0f |]
            let want = Array2D.init 2 3 (fun i j -> float32 (3 * i + j + 1))
            for header in [ "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}"
                            "{\"descr\":\"<f4\",\"fortran_order\":False,\"shape\":(2,3)}    \n"
                            "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }\n"
                            "{'descr': '<f4', 'fortran_order': False, 'shape': ((2), 3), }\n" ] do
                Expect.equal (read (npyBytes 1uy header v)) want header
            let empty = read (npyBytes 1uy (dict "<f4" false "(0, 5)") [||])
            Expect.equal (Array2D.length1 empty, Array2D.length2 empty) (0, 5) "zero rows"
        }

        test "other content is InvalidDataException saying what was found" {
            let good = f4 (Array.zeroCreate 6)
            let cases =
                [ "1-D", npyBytes 1uy (dict "<f4" false "(6,)") good, "1-D (shape (6,))"
                  "3-D", npyBytes 1uy (dict "<f4" false "(1, 2, 3)") good, "3-D (shape (1, 2, 3))"
                  "0-D", npyBytes 1uy (dict "<f4" false "()") good.[..3], "0-D"
                  "int64", npyBytes 1uy (dict "<i8" false "(2, 3)") (Array.zeroCreate 48), "'<i8'"
                  "big-endian", npyBytes 1uy (dict ">f4" false "(2, 3)") good, "'>f4' (big-endian"
                  "structured", npyBytes 1uy "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2, 3)}" good, "structured"
                  "bad magic", Array.append [| 0x93uy; byte 'N'; byte 'U'; byte 'M'; byte 'P'; byte 'Z'; 1uy; 0uy |] good, "bad magic"
                  "empty", [||], "an empty file"
                  "text file", "hello, world"B, "bad magic"
                  "version 4.0", Array.concat [ [| 0x93uy; byte 'N'; byte 'U'; byte 'M'; byte 'P'; byte 'Y'; 4uy; 0uy; 0uy; 0uy |]; good ], "version 4.0"
                  "not a dict", npyBytes 1uy "[1, 2]" good, "expected a dict"
                  "not a literal", npyBytes 1uy "{'descr': dtype('f4')}" good, "unknown name 'dtype'"
                  "missing shape", npyBytes 1uy "{'descr': '<f4', 'fortran_order': False}" good, "'shape' is missing"
                  "missing descr", npyBytes 1uy "{'fortran_order': False, 'shape': (2, 3)}" good, "'descr' is missing"
                  "extra key", npyBytes 1uy "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}" good, "unexpected key 'x'"
                  "duplicate key", npyBytes 1uy "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}" good, "more than once"
                  "order not bool", npyBytes 1uy "{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3)}" good, "not True or False"
                  "negative shape", npyBytes 1uy (dict "<f4" false "(-2, 3)") good, "negative"
                  "float shape", npyBytes 1uy (dict "<f4" false "(2.5, 3)") good, "malformed header"
                  "shape a list", npyBytes 1uy (dict "<f4" false "[2, 3]") good, "bad shape [2, 3]"
                  "huge shape", npyBytes 1uy (dict "<f4" false "(99999999999999999999, 3)") good, "too large"
                  "too many elements", npyBytes 1uy (dict "<f4" false "(2147483647, 2147483647)") good, "more than"
                  "unterminated", npyBytes 1uy "{'descr': '<f4" good, "unterminated string"
                  "nested", npyBytes 1uy (String('(', 10000)) good, "nested deeper"
                  "truncated data", npyBytes 1uy (dict "<f4" false "(2, 3)") good.[..22], "needs 24 bytes but only 23 remain"
                  "trailing data", npyBytes 1uy (dict "<f4" false "(2, 3)") (Array.append good [| 0uy |]), "1 trailing byte"
                  "header past the end", (npyBytes 1uy (dict "<f4" false "(2, 3)") good).[..40], "truncated"
                  "bad UTF-8 in 3.0", Array.append [| 0x93uy; byte 'N'; byte 'U'; byte 'M'; byte 'P'; byte 'Y'; 3uy; 0uy; 2uy; 0uy; 0uy; 0uy; 0xFFuy; 0xFEuy |] good, "UTF-8" ]
            for name, bytes, expected in cases do
                let e = expectInvalid name (fun () -> read bytes)
                Expect.stringContains e.Message expected $"{name}: the message says what was found"
            use dir = new TempDir()
            let path = dir.File "vector.npy"
            File.WriteAllBytes(path, npyBytes 1uy (dict "<f4" false "(6,)") good)
            let e = expectInvalid "file" (fun () -> Npy.readArray path)
            Expect.stringContains e.Message path "names the file"
        }

        test "every truncation of a valid file is InvalidDataException" {
            let a = Array2D.init 3 5 (fun i j -> float32 (i - j) / 3.0f)
            for bytes in [ written a; npyBytes 2uy (dict "<f8" true "(3, 5)") (Array.zeroCreate 120); npyBytes 3uy (dict "|u1" false "(3, 5)") (Array.zeroCreate 15) ] do
                for n in 0 .. bytes.Length - 1 do
                    expectInvalid $"{n} of {bytes.Length} bytes" (fun () -> read bytes.[.. n - 1]) |> ignore
                    expectInvalid $"{n} of {bytes.Length} bytes (non-seekable)" (fun () -> Npy.readArrayStream (new NonSeekable(bytes.[.. n - 1]))) |> ignore
        }

        testPropertyWithConfig (config 300) "random bytes are InvalidDataException, promptly and cheaply"
            (Prop.forAll (Arb.fromGen (Gen.arrayOf (Gen.choose (0, 255) |> Gen.map byte))) (fun bytes ->
                // Half the cases start with the magic and a valid version, to get past the first check.
                for b in [ bytes; Array.append [| 0x93uy; byte 'N'; byte 'U'; byte 'M'; byte 'P'; byte 'Y'; 1uy; 0uy |] bytes ] do
                    expectCleanOutcome (4L <<< 20) "random bytes" (fun () -> read b)))

        testPropertyWithConfig (config 500) "random header text gives a correct read or InvalidDataException"
            (Prop.forAll (Arb.fromGen (Gen.zip genHeaderText (Gen.elements [ 1uy; 2uy; 3uy ]))) (fun (header, major) ->
                let payload = f4 [| 1.0f; 2.0f; 3.0f |]
                expectCleanOutcome (4L <<< 20) $"header {header}" (fun () -> read (npyBytes major header payload))))

        testPropertyWithConfig (config 300) "random edits of a valid file give a correct read or InvalidDataException"
            (Prop.forAll (Arb.fromGen (Gen.zip genMatrix genEdits)) (fun (a, edits) ->
                let edited = List.fold mutate (written a) edits
                expectCleanOutcome (4L <<< 20) $"%A{edits}" (fun () -> read edited)
                expectCleanOutcome (4L <<< 20) $"%A{edits} (non-seekable)" (fun () -> Npy.readArrayStream (new NonSeekable(edited)))))

        test "a header declaring 2^31 elements on a short file fails without allocating them" {
            let bytes = npyBytes 1uy (dict "<f8" false "(65536, 32767)") (Array.zeroCreate 64)
            let r, allocated = guarded (fun () -> read bytes)
            match r with
            | Error(:? InvalidDataException) -> ()
            | other -> failtestf "expected InvalidDataException, got %A" other
            Expect.isLessThan allocated (4L <<< 20) "bytes allocated"
        }

        test "files: written atomically, read back; bad arguments are ArgumentException before any work" {
            use dir = new TempDir()
            let path = dir.File "x.npy"
            let a = Array2D.init 4 3 (fun i j -> float32 (i * 3 + j) * 0.25f)
            Npy.writeArray path a
            Expect.equal (Npy.readArray path) a "round trip through a file"
            use t = Npy.read path
            Expect.equal (Interop.toArray2D t) a "read as a tensor"
            use doubled = torch.tensor([| 1.0; 2.0; 3.0; 4.0 |], ReadOnlySpan<int64>([| 2L; 2L |]))
            Npy.write path doubled
            Expect.equal (Npy.readArray path) (array2D [ [ 1.0f; 2.0f ]; [ 3.0f; 4.0f ] ]) "a float64 tensor written as float32"
            Expect.equal (Directory.GetFiles dir.Path |> Array.map Path.GetFileName) [| "x.npy" |] "no temporary file left"
            let before = File.ReadAllBytes path
            let mutable failed = false
            try
                AtomicFile.writeWith (fun p -> new CheckpointTests.Faulty(new FileStream(p, FileMode.CreateNew), 70L) :> Stream) path (fun s ->
                    Npy.writeStream s 2 2 (ReadOnlySpan [| 9.0f; 9.0f; 9.0f; 9.0f |]))
            with :? IOException -> failed <- true
            Expect.isTrue failed "the fault surfaced"
            Expect.equal (File.ReadAllBytes path) before "a fault mid-write leaves the previous file whole"
            Expect.equal (Directory.GetFiles dir.Path |> Array.map Path.GetFileName) [| "x.npy" |] "and no temporary file"
            for name, f in
                [ "null path (read)", (fun () -> Npy.readArray null |> ignore)
                  "empty path (read)", (fun () -> Npy.readArray "" |> ignore)
                  "null path (write)", (fun () -> Npy.writeArray null a)
                  "blank path (write)", (fun () -> Npy.writeArray "  " a)
                  "null data", (fun () -> Npy.writeArray path null)
                  "null tensor", (fun () -> Npy.write path null)
                  "1-D tensor", (fun () -> Npy.write path (torch.zeros(3L))) ] do
                let e = Expect.throwsC f id
                Expect.isTrue (e :? ArgumentException) $"{name}: ArgumentException, got {e.GetType().Name}"
            Expect.equal (File.ReadAllBytes path) before "rejected writes touched nothing"
            match Expect.throwsC (fun () -> Npy.readArray (dir.File "absent.npy") |> ignore) id with
            | :? FileNotFoundException -> ()
            | other -> failtestf "expected FileNotFoundException, got %O" other
        }
    ]

/// The MAT-file reader against files written here from the format's definition (MATLAB's "MAT-File
/// Format", Level 5): every numeric type, both byte orders, compressed or not, small and long names;
/// damaged files; and the Frey Face loader on a file laid out as frey_rawface.mat.
module Research.Core.Tests.MatFileTests

open System
open System.Buffers.Binary
open System.IO
open System.IO.Compression
open Expecto
open TorchSharp
open Research.Core

/// A numeric data type of the format: its code, its array class, and how one value is encoded.
type private NumType = { Code: int; Class: int; Width: int; Write: bool -> float -> byte[] }

let private encode width (f: byte[] -> unit) = let b = Array.zeroCreate<byte> width in f b; b

let private types =
    [ { Code = 2; Class = 9; Width = 1; Write = fun _ v -> [| byte v |] }
      { Code = 1; Class = 8; Width = 1; Write = fun _ v -> [| byte (sbyte v) |] }
      { Code = 3; Class = 10; Width = 2; Write = fun be v -> encode 2 (fun b -> if be then BinaryPrimitives.WriteInt16BigEndian(Span b, int16 v) else BinaryPrimitives.WriteInt16LittleEndian(Span b, int16 v)) }
      { Code = 5; Class = 12; Width = 4; Write = fun be v -> encode 4 (fun b -> if be then BinaryPrimitives.WriteInt32BigEndian(Span b, int v) else BinaryPrimitives.WriteInt32LittleEndian(Span b, int v)) }
      { Code = 7; Class = 7; Width = 4; Write = fun be v -> encode 4 (fun b -> if be then BinaryPrimitives.WriteSingleBigEndian(Span b, float32 v) else BinaryPrimitives.WriteSingleLittleEndian(Span b, float32 v)) }
      { Code = 9; Class = 6; Width = 8; Write = fun be v -> encode 8 (fun b -> if be then BinaryPrimitives.WriteDoubleBigEndian(Span b, v) else BinaryPrimitives.WriteDoubleLittleEndian(Span b, v)) } ]

let private u32 be (v: uint32) = encode 4 (fun b -> if be then BinaryPrimitives.WriteUInt32BigEndian(Span b, v) else BinaryPrimitives.WriteUInt32LittleEndian(Span b, v))
let private pad (b: byte[]) = Array.append b (Array.zeroCreate ((8 - b.Length % 8) % 8))

/// One data element: the small format (type and length in one word) when it fits in 4 bytes and `small`.
let private element be small (kind: int) (payload: byte[]) =
    if small && payload.Length <= 4 then
        Array.concat [ u32 be ((uint32 payload.Length <<< 16) ||| uint32 kind); payload; Array.zeroCreate (4 - payload.Length) ]
    else Array.concat [ u32 be (uint32 kind); u32 be (uint32 payload.Length); pad payload ]

/// An miMATRIX element for a numeric array (values in column-major order), or for another class.
let private matrixElement be (name: string) (dims: int list) (cls: int) (t: NumType) (values: float list) =
    let flags = element be false 6 (Array.append (u32 be (uint32 cls)) (u32 be 0u))
    let dimensions = element be false 5 (dims |> List.map (uint32 >> u32 be) |> Array.concat)
    let nameBytes = element be true 1 (Text.Encoding.ASCII.GetBytes name)
    let data = element be false t.Code (values |> List.map (t.Write be) |> Array.concat)
    element be false 14 (Array.concat [ flags; dimensions; nameBytes; data ])

let private compressed be (elementBytes: byte[]) =
    use ms = new MemoryStream()
    do
        use z = new ZLibStream(ms, CompressionLevel.Optimal, leaveOpen = true)
        z.Write(elementBytes, 0, elementBytes.Length)
    let body = ms.ToArray()
    Array.concat [ u32 be 15u; u32 be (uint32 body.Length); body ] // compressed elements are not padded

let private header be =
    let text = Text.Encoding.ASCII.GetBytes("MATLAB 5.0 MAT-file, written by the Research tests".PadRight 116)
    let version = encode 2 (fun b -> if be then BinaryPrimitives.WriteUInt16BigEndian(Span b, 0x0100us) else BinaryPrimitives.WriteUInt16LittleEndian(Span b, 0x0100us))
    Array.concat [ text; Array.zeroCreate 8; version; (if be then "MI"B else "IM"B) ]

let private file be (elements: byte[] list) = Array.concat (header be :: elements)

let tests =
    testList "MatFile" [
        test "every numeric type, both byte orders, compressed or not, short and long names, round-trips" {
            let rnd = Random(17)
            for t in types do
                for be in [ false; true ] do
                    for zip in [ false; true ] do
                        for name in [ "ff"; "a_longer_name" ] do
                            let rows, cols = rnd.Next(1, 7), rnd.Next(1, 7)
                            let values = [ for _ in 1 .. rows * cols -> float (rnd.Next(0, 120)) ]
                            let m = matrixElement be name [ rows; cols ] t.Class t values
                            let bytes = file be [ (if zip then compressed be m else m) ]
                            let arrays, skipped = MatFile.parse "test" bytes
                            let what = $"type {t.Code}, big-endian {be}, compressed {zip}, name {name}"
                            Expect.hasLength arrays 1 what
                            Expect.isEmpty skipped what
                            Expect.equal arrays.Head.Name name what
                            Expect.equal arrays.Head.Dimensions [| rows; cols |] what
                            Expect.equal arrays.Head.Data (values |> List.map float32 |> Array.ofList) what
        }
        test "read finds a variable by name among others and names what it skipped" {
            let d = types |> List.find (fun t -> t.Code = 9)
            let bytes =
                file false [ matrixElement false "x" [ 2; 2 ] 6 d [ 1.0; 2.0; 3.0; 4.0 ]
                             matrixElement false "label" [ 1; 3 ] 4 (types |> List.find (fun t -> t.Code = 3)) [ 65.0; 66.0; 67.0 ]
                             compressed false (matrixElement false "y" [ 1; 2 ] 6 d [ 5.0; 6.0 ]) ]
            let path = Path.GetTempFileName()
            try
                File.WriteAllBytes(path, bytes)
                Expect.equal (MatFile.read path "y").Data [| 5.0f; 6.0f |] "the compressed variable"
                Expect.equal (MatFile.read path "x").Data [| 1.0f; 2.0f; 3.0f; 4.0f |] "the plain one"
                try
                    MatFile.read path "z" |> ignore
                    failtest "a missing variable must throw"
                with
                | :? Collections.Generic.KeyNotFoundException as e ->
                    Expect.stringContains e.Message "'x'" "lists what is there"
                    Expect.stringContains e.Message "'label' is a char array" "and what was skipped"
            finally
                File.Delete path
        }
        test "every truncation and every byte flip of a file fails cleanly or reads consistently" {
            let t = types |> List.find (fun t -> t.Code = 2)
            let m = matrixElement false "ff" [ 4; 3 ] t.Class t [ for i in 1 .. 12 -> float i ]
            for bytes in [ file false [ m ]; file false [ compressed false m ] ] do
                for length in 0 .. bytes.Length - 1 do
                    try
                        let arrays, _ = MatFile.parse "cut" (Array.sub bytes 0 length)
                        // A cut at an element boundary leaves a valid file with fewer arrays.
                        Expect.isEmpty arrays $"a file cut to {length} bytes holds no complete array"
                    with :? InvalidDataException -> ()
                for position in 0 .. bytes.Length - 1 do
                    let damaged = Array.copy bytes
                    damaged.[position] <- damaged.[position] ^^^ 0xA5uy
                    try
                        for a in fst (MatFile.parse "flipped" damaged) do
                            let count = a.Dimensions |> Array.fold (fun acc d -> acc * d) 1
                            Expect.equal a.Data.Length count $"a flip at byte {position} still yields a consistent array"
                    with
                    | :? InvalidDataException -> ()
                    | :? NotSupportedException -> ()
        }
        test "a lying size, a foreign header and a version 7.3 file are refused with their reason" {
            let lying = Array.concat [ header false; u32 false 14u; u32 false 0x7FFFFFF0u; Array.zeroCreate 16 ]
            Expect.throwsT<InvalidDataException> (fun () -> MatFile.parse "lying" lying |> ignore) "a size beyond the file"
            let foreign = Array.append (Text.Encoding.ASCII.GetBytes("hello".PadRight 126)) "IM"B
            Expect.throwsT<InvalidDataException> (fun () -> MatFile.parse "foreign" foreign |> ignore) "not a MAT-file"
            let v73 = Array.append (Text.Encoding.ASCII.GetBytes("MATLAB 7.3 MAT-file, Platform: GLNXA64".PadRight 126)) "IM"B
            Expect.throwsT<NotSupportedException> (fun () -> MatFile.parse "v7.3" v73 |> ignore) "HDF5-based 7.3 files"
            Expect.throwsT<InvalidDataException> (fun () -> MatFile.parse "short" (Array.zeroCreate 100) |> ignore) "shorter than the header"
        }
        test "FreyFace.load gives one image per row, scaled to [0, 1], from a file laid out as frey_rawface.mat" {
            let t = types |> List.find (fun t -> t.Code = 2)
            let images = 3
            // Column j of 'ff' (560 values, first index fastest) is image j.
            let pixel image i = float ((image * 7 + i) % 256)
            let values = [ for image in 0 .. images - 1 do for i in 0 .. 559 -> pixel image i ]
            let path = Path.GetTempFileName()
            try
                File.WriteAllBytes(path, file false [ compressed false (matrixElement false "ff" [ 560; images ] t.Class t values) ])
                use faces = FreyFace.load path
                Expect.equal faces.shape [| int64 images; 560L |] "[images, 28·20]"
                let a = Interop.toArray2D faces
                for image in 0 .. images - 1 do
                    for i in [ 0; 1; 20; 559 ] do
                        Expect.floatClose Accuracy.single (float a.[image, i]) (pixel image i / 255.0) $"image {image}, pixel {i}"
                File.WriteAllBytes(path, file false [ matrixElement false "ff" [ 10; 2 ] t.Class t [ for i in 1 .. 20 -> 1.0 ] ])
                Expect.throwsT<InvalidDataException> (fun () -> FreyFace.load path |> ignore) "not 560 rows"
            finally
                File.Delete path
        }
    ]

/// Reads numeric matrices from MATLAB Level 5 MAT-files (the format of the Frey Face data set,
/// frey_rawface.mat), uncompressed or zlib-compressed, little- or big-endian. Every size is checked
/// against the bytes present before anything is allocated.
module Research.Core.MatFile

open System
open System.Buffers.Binary
open System.IO
open System.IO.Compression

/// A numeric MATLAB array: its name, its dimensions as MATLAB states them (rows first), and its real
/// values in MATLAB's column-major order, converted to float32.
type MatArray =
    { /// The variable's name in the file.
      Name: string
      /// The size of each dimension, as in MATLAB's size(): rows, columns, ….
      Dimensions: int[]
      /// The values in column-major order (the first index varies fastest).
      Data: float32[] }

// Data element types (MAT-file format, table 1-1) and array classes (table 1-3) that this reader uses.
[<Literal>]
let private miINT8 = 1
[<Literal>]
let private miUINT8 = 2
[<Literal>]
let private miINT16 = 3
[<Literal>]
let private miUINT16 = 4
[<Literal>]
let private miINT32 = 5
[<Literal>]
let private miUINT32 = 6
[<Literal>]
let private miSINGLE = 7
[<Literal>]
let private miDOUBLE = 9
[<Literal>]
let private miINT64 = 12
[<Literal>]
let private miUINT64 = 13
[<Literal>]
let private miMATRIX = 14
[<Literal>]
let private miCOMPRESSED = 15

/// Bytes per element of each numeric data type.
let private width =
    dict [ miINT8, 1; miUINT8, 1; miINT16, 2; miUINT16, 2; miINT32, 4; miUINT32, 4
           miSINGLE, 4; miDOUBLE, 8; miINT64, 8; miUINT64, 8 ]

let private className =
    dict [ 1, "cell"; 2, "struct"; 3, "object"; 4, "char"; 5, "sparse"; 6, "double"; 7, "single"; 8, "int8"
           9, "uint8"; 10, "int16"; 11, "uint16"; 12, "int32"; 13, "uint32"; 14, "int64"; 15, "uint64" ]

let private fail (source: string) (what: string) : 'a =
    raise (InvalidDataException($"MAT-file {source}: {what}"))

/// Reads data elements from `bytes`, honouring the file's byte order.
type private Reader(source: string, bytes: byte[], bigEndian: bool) =
    let u32 (at: int) =
        let s = ReadOnlySpan<byte>(bytes, at, 4)
        if bigEndian then BinaryPrimitives.ReadUInt32BigEndian s else BinaryPrimitives.ReadUInt32LittleEndian s

    /// The element at `at`: (type, payload offset, payload length, offset of the next element).
    /// A small element (type and length in one word) holds up to 4 bytes in the tag itself.
    member _.Element(at: int, limit: int) =
        if limit - at < 8 then fail source $"a data element at byte {at} is cut short (8 tag bytes needed, {limit - at} left)"
        let first = u32 at
        if first >>> 16 <> 0u then
            let kind, length = int (first &&& 0xFFFFu), int (first >>> 16)
            if length > 4 then fail source $"a small data element at byte {at} claims {length} bytes (at most 4)"
            kind, at + 4, length, at + 8
        else
            let kind, length = int first, u32 (at + 4)
            if int64 length > int64 (limit - at - 8) then
                fail source $"a data element at byte {at} claims {length} bytes but only {limit - at - 8} follow"
            let payload = at + 8
            // Elements are padded to 8 bytes, except compressed ones, which are exact.
            let next = if kind = miCOMPRESSED then payload + int length else payload + ((int length + 7) &&& ~~~7)
            kind, payload, int length, min next limit

    member _.U32(at: int) = u32 at
    member _.Bytes() = bytes

    /// Value `i` of numeric type `kind` (of `w` bytes) stored from `at`, as float32.
    member _.Value(kind: int, at: int, w: int, i: int) : float32 =
        let s = ReadOnlySpan<byte>(bytes, at + i * w, w)
        let be = bigEndian
        match kind with
        | k when k = miINT8 -> float32 (sbyte bytes.[at + i])
        | k when k = miUINT8 -> float32 bytes.[at + i]
        | k when k = miINT16 -> float32 (if be then BinaryPrimitives.ReadInt16BigEndian s else BinaryPrimitives.ReadInt16LittleEndian s)
        | k when k = miUINT16 -> float32 (if be then BinaryPrimitives.ReadUInt16BigEndian s else BinaryPrimitives.ReadUInt16LittleEndian s)
        | k when k = miINT32 -> float32 (if be then BinaryPrimitives.ReadInt32BigEndian s else BinaryPrimitives.ReadInt32LittleEndian s)
        | k when k = miUINT32 -> float32 (if be then BinaryPrimitives.ReadUInt32BigEndian s else BinaryPrimitives.ReadUInt32LittleEndian s)
        | k when k = miSINGLE -> if be then BinaryPrimitives.ReadSingleBigEndian s else BinaryPrimitives.ReadSingleLittleEndian s
        | k when k = miDOUBLE -> float32 (if be then BinaryPrimitives.ReadDoubleBigEndian s else BinaryPrimitives.ReadDoubleLittleEndian s)
        | k when k = miINT64 -> float32 (if be then BinaryPrimitives.ReadInt64BigEndian s else BinaryPrimitives.ReadInt64LittleEndian s)
        | _ -> float32 (if be then BinaryPrimitives.ReadUInt64BigEndian s else BinaryPrimitives.ReadUInt64LittleEndian s)

    /// `count` values of numeric type `kind` at `at`, as float32.
    member this.Numbers(kind: int, at: int, length: int, count: int64) : float32[] =
        match width.TryGetValue kind with
        | false, _ -> fail source $"data type {kind} is not numeric"
        | true, w ->
            if int64 length <> count * int64 w then
                fail source $"the data holds {length} bytes but {count} values of {w} bytes were declared"
            Array.init (int count) (fun i -> this.Value(kind, at, w, i))

/// Inflates a zlib stream, refusing to produce more than `cap` bytes (a lying stream cannot exhaust memory).
let private inflate (source: string) (bytes: byte[]) (at: int) (length: int) (cap: int64) =
    try
        use input = new MemoryStream(bytes, at, length)
        use z = new ZLibStream(input, CompressionMode.Decompress)
        use out = new MemoryStream()
        let buffer = Array.zeroCreate<byte> 65536
        let mutable n = z.Read(buffer, 0, buffer.Length)
        while n > 0 do
            if out.Length + int64 n > cap then fail source $"a compressed element inflates to more than {cap} bytes"
            out.Write(buffer, 0, n)
            n <- z.Read(buffer, 0, buffer.Length)
        out.ToArray()
    with
    | :? InvalidDataException as e when not (e.Message.StartsWith "MAT-file") -> fail source $"a compressed element is damaged ({e.Message})"

/// Parses one miMATRIX payload: the array, or Error saying why it is not a numeric full array.
let private matrix (source: string) (r: Reader) (at: int) (limit: int) : Result<MatArray, string> =
    let flagsKind, flagsAt, flagsLength, next = r.Element(at, limit)
    if flagsKind <> miUINT32 || flagsLength <> 8 then fail source "an array lacks its flags"
    let flags = r.U32 flagsAt
    let cls = int (flags &&& 0xFFu)
    let complex = flags &&& 0x800u <> 0u
    let dimsKind, dimsAt, dimsLength, next = r.Element(next, limit)
    if dimsKind <> miINT32 || dimsLength < 8 || dimsLength % 4 <> 0 then fail source "an array lacks its dimensions"
    let dims = Array.init (dimsLength / 4) (fun i -> int (r.U32(dimsAt + 4 * i)))
    if dims |> Array.exists (fun d -> d < 0) then fail source $"negative dimension in %A{dims}"
    let nameKind, nameAt, nameLength, next = r.Element(next, limit)
    if nameKind <> miINT8 then fail source "an array lacks its name"
    let name = Text.Encoding.ASCII.GetString(Array.sub (r.Bytes ()) nameAt nameLength)
    let count = dims |> Array.fold (fun acc d -> acc * int64 d) 1L
    match className.TryGetValue cls with
    | true, _ when cls >= 6 && cls <= 15 && not complex ->
        let kind, dataAt, dataLength, _ = r.Element(next, limit)
        if count > int64 Int32.MaxValue then fail source $"'{name}' has {count} elements, more than one array can hold"
        Ok { Name = name; Dimensions = dims; Data = r.Numbers(kind, dataAt, dataLength, count) }
    | true, c ->
        let kind = if complex then "complex " + c else c
        Error $"'{name}' is a {kind} array"
    | false, _ -> fail source $"'{name}' has unknown array class {cls}"

/// deflate expands by at most about 1032:1, which bounds what a compressed element may honestly hold.
let private deflateRatio = 1032L

/// Every numeric full array in the MAT-file `bytes` (named `source` in errors), and a note for each
/// variable skipped (cells, structs, chars, sparse or complex arrays).
let parse (source: string) (bytes: byte[]) : MatArray list * string list =
    if isNull bytes then nullArg "bytes"
    if bytes.Length < 128 then fail source $"{bytes.Length} bytes, shorter than the 128-byte header"
    let text = Text.Encoding.ASCII.GetString(bytes, 0, 116)
    if text.StartsWith "MATLAB 7.3" then
        raise (NotSupportedException($"MAT-file {source}: version 7.3 files are HDF5; save with -v7 or -v6 to read them here."))
    if not (text.StartsWith "MATLAB 5.0 MAT-file") then fail source "not a Level 5 MAT-file (its header does not start with 'MATLAB 5.0 MAT-file')"
    let bigEndian =
        match char bytes.[126], char bytes.[127] with
        | 'I', 'M' -> false
        | 'M', 'I' -> true
        | a, b -> fail source $"unknown byte-order mark '{a}{b}'"
    let top = Reader(source, bytes, bigEndian)
    let arrays, skipped = ResizeArray<MatArray>(), ResizeArray<string>()
    let take (r: Reader) at limit =
        match matrix source r at limit with
        | Ok a -> arrays.Add a
        | Error why -> skipped.Add why
    let mutable at = 128
    while at < bytes.Length do
        let kind, payload, length, next = top.Element(at, bytes.Length)
        if kind = miMATRIX then take top payload (payload + length)
        elif kind = miCOMPRESSED then
            let inner = inflate source bytes payload length (min (1L <<< 30) (deflateRatio * int64 length + 1024L))
            let r = Reader(source, inner, bigEndian)
            let innerKind, innerPayload, innerLength, _ = r.Element(0, inner.Length)
            if innerKind = miMATRIX then take r innerPayload (innerPayload + innerLength)
        at <- next
    List.ofSeq arrays, List.ofSeq skipped

/// The numeric array called `name` in the MAT-file at `path`. Throws InvalidDataException for a damaged
/// or foreign file, KeyNotFoundException (listing what the file holds) when there is no such array.
let read (path: string) (name: string) : MatArray =
    if isNull path then nullArg "path"
    if not (File.Exists path) then raise (FileNotFoundException($"MAT-file not found: {path}", path))
    let arrays, skipped = parse path (File.ReadAllBytes path)
    match arrays |> List.tryFind (fun a -> a.Name = name) with
    | Some a -> a
    | None ->
        let held = String.Join(", ", [ for a in arrays -> $"'{a.Name}'" ] @ skipped)
        let held = if held = "" then "nothing" else held
        raise (Collections.Generic.KeyNotFoundException($"MAT-file {path} has no numeric array '{name}'; it holds: {held}."))

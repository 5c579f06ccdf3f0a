/// NumPy's .npy format for 2-D numeric arrays, the interchange with Python research code.
///
/// Layout (NEP 1, numpy/lib/format.py): the magic "\x93NUMPY", a major and a minor version byte
/// (1.0, 2.0 or 3.0), the header length (uint16 little-endian for 1.0, uint32 for 2.0 and 3.0), the
/// header: a Python dict literal {'descr': ..., 'fortran_order': ..., 'shape': ...} in Latin-1 (UTF-8
/// for 3.0) padded with spaces and a newline, then the elements, in C (row-major) or Fortran
/// (column-major) order as the header says.
///
/// Reading takes 2-D arrays of float32 ('<f4'), float64 ('<f8', rounded to float32) and uint8 ('|u1',
/// the numbers 0–255, not scaled). Writing produces what numpy.save writes for a float32 C-order array,
/// byte for byte: version 1.0, the header padded so that the data start at a multiple of 64 bytes.
module Research.Core.Npy

open System
open System.Buffers.Binary
open System.Globalization
open System.IO
open System.Runtime.InteropServices
open System.Text
open TorchSharp
open Research.Core.Interop

/// The element types read.
type Dtype =
    /// '<f4', little-endian IEEE single precision.
    | Float32
    /// '<f8', little-endian IEEE double precision (rounded to float32 on reading).
    | Float64
    /// '|u1', unsigned bytes (read as the numbers 0–255).
    | UInt8

/// What a .npy header says about the array that follows it.
type Header =
    { /// The element type.
      Dtype: Dtype
      /// True when the elements are stored column by column (Fortran order), false for row by row (C order).
      FortranOrder: bool
      /// The number of rows (the first dimension).
      Rows: int
      /// The number of columns (the second dimension).
      Columns: int }

let private magic = [| 0x93uy; byte 'N'; byte 'U'; byte 'M'; byte 'P'; byte 'Y' |]

/// The longest header accepted, in bytes. Honest headers of a 2-D array are under 200 bytes (NumPy
/// itself refuses headers over 10,000 characters by default); the cap bounds what a corrupt length costs.
[<Literal>]
let MaxHeaderBytes = 1048576

/// Nesting depth at which the header parser gives up, so a hostile header cannot exhaust the stack.
[<Literal>]
let private MaxNesting = 32

let private fail (source: string) (what: string) : 'a =
    raise (InvalidDataException($"NumPy file {source}: {what}"))

let private itemSize (d: Dtype) =
    match d with
    | Float32 -> 4
    | Float64 -> 8
    | UInt8 -> 1

let private descr (d: Dtype) =
    match d with
    | Float32 -> "'<f4'"
    | Float64 -> "'<f8'"
    | UInt8 -> "'|u1'"

// ---- The header: a small parser for the Python literals a .npy header may hold ------------------

/// A Python literal as ast.literal_eval would read it (the subset a .npy header can hold).
type private Literal =
    | Str of string
    | Int of string // the digits, with sign: range is checked where the value is used
    | Bool of bool
    | NoneValue
    | Tuple of Literal list
    | List of Literal list
    | Dict of (Literal * Literal) list

/// Python's repr of a literal, for messages.
let rec private repr (v: Literal) =
    match v with
    | Str s -> "'" + s.Replace("\\", "\\\\").Replace("'", "\\'") + "'"
    | Int s -> s
    | Bool b -> if b then "True" else "False"
    | NoneValue -> "None"
    | Tuple [ x ] -> $"({repr x},)"
    | Tuple xs -> "(" + String.Join(", ", xs |> List.map repr) + ")"
    | List xs -> "[" + String.Join(", ", xs |> List.map repr) + "]"
    | Dict kvs -> "{" + String.Join(", ", kvs |> List.map (fun (k, v) -> $"{repr k}: {repr v}")) + "}"

/// At most 60 characters of the header text, escaped, for messages.
let private excerpt (s: string) =
    let cut = if s.Length > 60 then s.Substring(0, 60) + "…" else s
    cut.Replace("\n", "\\n").Replace("\r", "\\r").Replace("\t", "\\t")

/// Parses the header text as one Python dict literal followed only by whitespace.
let private parseLiteral (source: string) (text: string) : Literal =
    let mutable at = 0
    let bad (what: string) : 'a = fail source $"malformed header: {what} at character {at} of \"{excerpt text}\""
    let skipSpace () =
        while at < text.Length && (text.[at] = ' ' || text.[at] = '\t' || text.[at] = '\n' || text.[at] = '\r') do
            at <- at + 1
    let expect (c: char) =
        skipSpace ()
        if at < text.Length && text.[at] = c then at <- at + 1 else bad $"expected '{c}'"
    let rec value (depth: int) : Literal =
        if depth > MaxNesting then bad $"nested deeper than {MaxNesting} levels"
        skipSpace ()
        if at >= text.Length then bad "unexpected end"
        match text.[at] with
        | '\'' | '"' as quote ->
            at <- at + 1
            let sb = StringBuilder()
            while at < text.Length && text.[at] <> quote do
                if text.[at] = '\\' && at + 1 < text.Length then at <- at + 1
                sb.Append text.[at] |> ignore
                at <- at + 1
            if at >= text.Length then bad "unterminated string"
            at <- at + 1
            Str(sb.ToString())
        | '(' ->
            at <- at + 1
            // As in Python, (x) is x itself and only (x,) a tuple of one.
            match sequence depth ')' with
            | [ x ], false -> x
            | items, _ -> Tuple items
        | '[' -> at <- at + 1; List(fst (sequence depth ']'))
        | '{' ->
            at <- at + 1
            let entries = ResizeArray()
            let mutable more = true
            while more do
                skipSpace ()
                if at < text.Length && text.[at] = '}' then
                    at <- at + 1
                    more <- false
                else
                    let k = value (depth + 1)
                    expect ':'
                    entries.Add((k, value (depth + 1)))
                    skipSpace ()
                    if at < text.Length && text.[at] = ',' then at <- at + 1
                    elif at < text.Length && text.[at] = '}' then
                        at <- at + 1
                        more <- false
                    else bad "expected ',' or '}'"
            Dict(List.ofSeq entries)
        | c when Char.IsAsciiDigit c || c = '-' || c = '+' ->
            let start = at
            at <- at + 1
            while at < text.Length && Char.IsAsciiDigit text.[at] do at <- at + 1
            let digits = text.Substring(start, at - start)
            if digits = "-" || digits = "+" then bad "a sign without digits"
            // Python 2's NumPy wrote long integers as 3L; NumPy still reads them in 1.0 and 2.0 headers.
            if at < text.Length && text.[at] = 'L' then at <- at + 1
            Int digits
        | c when Char.IsAsciiLetter c ->
            let start = at
            while at < text.Length && Char.IsAsciiLetterOrDigit text.[at] do at <- at + 1
            match text.Substring(start, at - start) with
            | "True" -> Bool true
            | "False" -> Bool false
            | "None" -> NoneValue
            | word -> at <- start; bad $"unknown name '{word}'"
        | c -> bad $"unexpected character '{c}'"
    /// The items up to the closing bracket, and whether a comma followed the last one.
    and sequence (depth: int) (close: char) : Literal list * bool =
        let items = ResizeArray()
        let mutable comma = false
        let mutable more = true
        while more do
            skipSpace ()
            if at < text.Length && text.[at] = close then
                at <- at + 1
                more <- false
            else
                items.Add(value (depth + 1))
                comma <- false
                skipSpace ()
                if at < text.Length && text.[at] = ',' then
                    at <- at + 1
                    comma <- true
                elif at < text.Length && text.[at] = close then
                    at <- at + 1
                    more <- false
                else bad $"expected ',' or '{close}'"
        List.ofSeq items, comma
    let result = value 0
    skipSpace ()
    if at < text.Length then bad "unexpected text after the header dict"
    result

/// Checks a parsed header dict and reads the element type, order and 2-D shape from it.
let private interpret (source: string) (header: Literal) : Header =
    let entries =
        match header with
        | Dict kvs -> kvs
        | other -> fail source $"malformed header: expected a dict, found {repr other}"
    let keyName (k: Literal) =
        match k with
        | Str s -> s
        | other -> fail source $"malformed header: the key {repr other} is not a string"
    let names = entries |> List.map (fst >> keyName)
    match names |> List.countBy id |> List.tryFind (fun (_, n) -> n > 1) with
    | Some(k, _) -> fail source $"malformed header: the key '{k}' appears more than once"
    | None -> ()
    match names |> List.tryFind (fun k -> not (List.contains k [ "descr"; "fortran_order"; "shape" ])) with
    | Some k -> fail source $"malformed header: unexpected key '{k}' (a .npy header has exactly 'descr', 'fortran_order' and 'shape')"
    | None -> ()
    let get key =
        match entries |> List.tryFind (fun (k, _) -> keyName k = key) with
        | Some(_, v) -> v
        | None -> fail source $"malformed header: the key '{key}' is missing"
    let dtype =
        match get "descr" with
        | Str("<f4") -> Float32
        | Str("<f8") -> Float64
        // One byte has no byte order: NumPy writes '|u1', but '<u1', '>u1', '=u1' and 'u1' mean the same.
        | Str("|u1" | "<u1" | ">u1" | "=u1" | "u1") -> UInt8
        | Str s ->
            let hint = if s.StartsWith ">" then " (big-endian; convert with a.astype('<f4') in NumPy)" else ""
            fail source $"unsupported dtype '{s}'{hint}: only float32 ('<f4'), float64 ('<f8') and uint8 ('|u1') are read"
        | List _ as fields -> fail source $"unsupported structured dtype {repr fields}: only plain float32, float64 and uint8 arrays are read"
        | other -> fail source $"malformed header: 'descr' is {repr other}, not a dtype string"
    let fortran =
        match get "fortran_order" with
        | Bool b -> b
        | other -> fail source $"malformed header: 'fortran_order' is {repr other}, not True or False"
    let shape = get "shape"
    let dims =
        match shape with
        | Tuple items ->
            items |> List.map (fun d ->
                match d with
                | Int digits ->
                    match Int64.TryParse(digits, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture) with
                    | true, v when v >= 0L -> v
                    | true, v -> fail source $"bad shape {repr shape}: dimension {v} is negative"
                    | _ -> fail source $"bad shape {repr shape}: dimension {digits} is too large"
                | other -> fail source $"bad shape {repr shape}: {repr other} is not an integer")
        | other -> fail source $"bad shape {repr other}: expected a tuple of integers"
    match dims with
    | [ rows; columns ] ->
        if rows > int64 Int32.MaxValue || columns > int64 Int32.MaxValue || (columns > 0L && rows > int64 Array.MaxLength / columns) then
            fail source $"shape {repr shape} has more than {Array.MaxLength} elements, the largest array supported"
        { Dtype = dtype; FortranOrder = fortran; Rows = int rows; Columns = int columns }
    | _ ->
        let hint = if dims.Length = 1 then "; reshape it to (n, 1) or (1, n) in NumPy" else ""
        fail source $"the array is {dims.Length}-D (shape {repr shape}): only 2-D arrays (rows × columns) are read{hint}"

/// Reads exactly buffer.Length bytes or fails, naming what was being read.
let private fill (source: string) (s: Stream) (buffer: Span<byte>) (what: string) =
    let got = s.ReadAtLeast(buffer, buffer.Length, false)
    if got < buffer.Length then fail source $"truncated: the file ends {buffer.Length - got} byte(s) short in {what}"

/// Reads the magic, version and header of a seekable stream positioned at the file's first byte,
/// leaving it at the first data byte; checks that exactly the data the header declares follow.
let private readHeader (source: string) (s: Stream) : Header =
    let prefix = Array.zeroCreate<byte> 8
    let got = s.ReadAtLeast(Span prefix, 8, false)
    if got < 6 || not (ReadOnlySpan(prefix, 0, 6).SequenceEqual(ReadOnlySpan magic)) then
        let seen = if got = 0 then "an empty file" else BitConverter.ToString(prefix, 0, min got 6)
        fail source $"bad magic number: expected 93-4E-55-4D-50-59 (\"\\x93NUMPY\"), found {seen}; this is not a .npy file"
    if got < 8 then fail source "truncated: the file ends inside the format version"
    let major, minor = prefix.[6], prefix.[7]
    let lengthBytes, encoding =
        match major, minor with
        | 1uy, 0uy -> 2, Encoding.Latin1
        | 2uy, 0uy -> 4, Encoding.Latin1
        | 3uy, 0uy -> 4, (UTF8Encoding(false, true) :> Encoding)
        | _ -> fail source $"unsupported format version {major}.{minor}: versions 1.0, 2.0 and 3.0 are read"
    let lengthField = Array.zeroCreate<byte> 4
    fill source s (Span(lengthField, 0, lengthBytes)) "the header length"
    let headerLength =
        if lengthBytes = 2 then int64 (BinaryPrimitives.ReadUInt16LittleEndian(ReadOnlySpan lengthField))
        else int64 (BinaryPrimitives.ReadUInt32LittleEndian(ReadOnlySpan lengthField))
    if headerLength > int64 MaxHeaderBytes then
        fail source $"the header length {headerLength} exceeds {MaxHeaderBytes} bytes; the file is corrupt"
    let remaining = s.Length - s.Position
    if remaining < headerLength then
        fail source $"truncated: the header length is {headerLength} bytes but only {remaining} remain"
    let headerBytes = Array.zeroCreate<byte> (int headerLength)
    fill source s (Span headerBytes) "the header"
    let text =
        try encoding.GetString headerBytes
        with :? DecoderFallbackException -> fail source "malformed header: the version 3.0 header is not valid UTF-8"
    let header = interpret source (parseLiteral source text)
    let dataBytes = int64 header.Rows * int64 header.Columns * int64 (itemSize header.Dtype)
    let remaining = s.Length - s.Position
    let shape = $"({header.Rows}, {header.Columns})"
    if remaining < dataBytes then
        fail source $"truncated data: shape {shape} of {descr header.Dtype} needs {dataBytes} bytes but only {remaining} remain"
    if remaining > dataBytes then
        fail source $"{remaining - dataBytes} trailing byte(s) after the {dataBytes} bytes of data that shape {shape} of {descr header.Dtype} needs"
    header

/// Decodes little-endian elements into float32.
let private decode (dtype: Dtype) (bytes: ReadOnlySpan<byte>) (into: Span<float32>) =
    match dtype with
    | Float32 ->
        if BitConverter.IsLittleEndian then MemoryMarshal.Cast<byte, float32>(bytes).CopyTo into
        else for i in 0 .. into.Length - 1 do into.[i] <- BinaryPrimitives.ReadSingleLittleEndian(bytes.Slice(4 * i, 4))
    | Float64 ->
        if BitConverter.IsLittleEndian then
            let doubles = MemoryMarshal.Cast<byte, float>(bytes)
            for i in 0 .. into.Length - 1 do into.[i] <- float32 doubles.[i]
        else for i in 0 .. into.Length - 1 do into.[i] <- float32 (BinaryPrimitives.ReadDoubleLittleEndian(bytes.Slice(8 * i, 8)))
    | UInt8 -> for i in 0 .. into.Length - 1 do into.[i] <- float32 bytes.[i]

/// Elements decoded per chunk: the raw bytes of a chunk are at most 512 KiB.
let private chunkElements = 65536

/// Reads the data that follow the header into destination (rows × columns, row-major), in chunks.
let private readData (source: string) (s: Stream) (header: Header) (destination: Span<float32>) =
    let size = itemSize header.Dtype
    let total = destination.Length
    let raw = Array.zeroCreate<byte> (size * min total chunkElements)
    let values = Array.zeroCreate<float32> (if header.FortranOrder then min total chunkElements else 0)
    let mutable k = 0
    while k < total do
        let m = min chunkElements (total - k)
        let bytes = Span(raw, 0, m * size)
        fill source s bytes "the data"
        if not header.FortranOrder then decode header.Dtype (Span<byte>.op_Implicit bytes) (destination.Slice(k, m))
        else
            // Element k of a Fortran-order file is row k % rows, column k / rows.
            decode header.Dtype (Span<byte>.op_Implicit bytes) (Span(values, 0, m))
            let rows = header.Rows
            for e in 0 .. m - 1 do
                let index = k + e
                destination.[(index % rows) * header.Columns + index / rows] <- values.[e]
        k <- k + m

/// A seekable view of s: s itself, or its whole content copied into memory.
let private seekable (s: Stream) : Stream =
    if s.CanSeek then s
    else
        let copy = new MemoryStream()
        s.CopyTo copy
        copy.Position <- 0L
        copy

let private sourceName (s: Stream) = match s with :? FileStream as f -> f.Name | _ -> "<stream>"

/// Reads a 2-D .npy array from a stream positioned at its first byte, which must end with the data, as
/// float32[rows, columns]. A stream that cannot seek is first copied into memory. Throws
/// InvalidDataException, saying what was found, for a bad magic number or version, a malformed header
/// (not a dict, missing or unexpected keys, a bad shape), an array that is not 2-D, a dtype other than
/// '<f4', '<f8' and '|u1' (named), and a truncated or over-long file.
let readArrayStream (s: Stream) : float32[,] =
    if isNull s then nullArg "s"
    let source = sourceName s
    let s = seekable s
    let header = readHeader source s
    let result = Array2D.zeroCreate<float32> header.Rows header.Columns
    if header.Rows > 0 && header.Columns > 0 then
        readData source s header (MemoryMarshal.CreateSpan(&result.[0, 0], header.Rows * header.Columns))
    result

/// Reads a 2-D .npy array from a stream, as readArrayStream, into a CPU float32 tensor [rows, columns].
let readStream (s: Stream) : Tensor =
    if isNull s then nullArg "s"
    Native.ensureLoaded ()
    let source = sourceName s
    let s = seekable s
    let header = readHeader source s
    let flat = Array.zeroCreate<float32> (header.Rows * header.Columns)
    readData source s header (Span flat)
    torch.tensor(flat, ReadOnlySpan<int64>([| int64 header.Rows; int64 header.Columns |]))

let private openRead (path: string) : Stream =
    if isNull path then nullArg "path"
    if String.IsNullOrWhiteSpace path then raise (ArgumentException("The path is empty.", "path"))
    if not (File.Exists path) then raise (FileNotFoundException($"NumPy file not found: {path}", path))
    new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 65536)

/// Reads a 2-D .npy file (float32, float64 or uint8; C or Fortran order; format 1.0, 2.0 or 3.0) as
/// float32[rows, columns]; float64 values are rounded to float32, uint8 values are their numbers 0–255.
/// Throws ArgumentException for a null or empty path, FileNotFoundException for a missing file and
/// InvalidDataException, naming the file and what was found, for any other content (readArrayStream).
let readArray (path: string) : float32[,] =
    use s = openRead path
    readArrayStream s

/// Reads a 2-D .npy file as readArray does, into a CPU float32 tensor [rows, columns].
let read (path: string) : Tensor =
    use s = openRead path
    readStream s

// ---- Writing -------------------------------------------------------------------------------------

/// The header NumPy 1.24's numpy.save writes for a float32 C-order array of this shape: version 1.0,
/// the dict with its keys sorted, room for the first dimension to grow to 21 digits, then spaces and a
/// newline up to a multiple of 64 bytes.
let headerBytes (rows: int) (columns: int) : byte[] =
    if rows < 0 then raise (ArgumentOutOfRangeException("rows", rows, "The row count must not be negative."))
    if columns < 0 then raise (ArgumentOutOfRangeException("columns", columns, "The column count must not be negative."))
    let dict = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {columns}), }}"
    let dict = dict + String(' ', 21 - string(rows).Length)
    let prefixLength = magic.Length + 2 + 2
    let unpadded = prefixLength + dict.Length + 1
    let padding = 64 - unpadded % 64
    let text = dict + String(' ', padding) + "\n"
    let bytes = Array.zeroCreate<byte> (prefixLength + text.Length)
    magic.CopyTo(bytes, 0)
    bytes.[6] <- 1uy
    bytes.[7] <- 0uy
    BinaryPrimitives.WriteUInt16LittleEndian(Span(bytes, 8, 2), uint16 text.Length)
    Encoding.Latin1.GetBytes(text, 0, text.Length, bytes, prefixLength) |> ignore
    bytes

/// Writes row-major values as a float32 C-order .npy array of rows × columns to a stream (not flushed
/// or closed).
let writeStream (s: Stream) (rows: int) (columns: int) (values: ReadOnlySpan<float32>) : unit =
    if isNull s then nullArg "s"
    if int64 values.Length <> int64 rows * int64 columns then
        raise (ArgumentException($"{values.Length} values do not make {rows} × {columns}.", "values"))
    s.Write(ReadOnlySpan(headerBytes rows columns))
    if BitConverter.IsLittleEndian then s.Write(MemoryMarshal.AsBytes values)
    else
        let scratch = Array.zeroCreate<byte> 4
        for i in 0 .. values.Length - 1 do
            BinaryPrimitives.WriteSingleLittleEndian(Span scratch, values.[i])
            s.Write(ReadOnlySpan scratch)

let private checkPath (path: string) =
    if isNull path then nullArg "path"
    if String.IsNullOrWhiteSpace path then raise (ArgumentException("The path is empty.", "path"))

/// Writes a float32[rows, columns] as a .npy file that numpy.load reads back (float32, C order, format
/// 1.0), atomically (AtomicFile.write: a previous file at path stays whole if anything fails). Throws
/// ArgumentException for a null array or a null or empty path, before anything is written.
let writeArray (path: string) (data: float32[,]) : unit =
    checkPath path
    if isNull data then nullArg "data"
    let rows, columns = Array2D.length1 data, Array2D.length2 data
    AtomicFile.write path (fun s ->
        let values = if rows * columns = 0 then ReadOnlySpan.Empty else MemoryMarshal.CreateReadOnlySpan(&data.[0, 0], rows * columns)
        writeStream s rows columns values)

/// Writes a 2-D tensor (any float dtype, any device; converted to float32 on the CPU) as writeArray does.
/// Throws ArgumentException for a null tensor, one that is not 2-D, or a null or empty path.
let write (path: string) (data: Tensor) : unit =
    checkPath path
    if isNull data then nullArg "data"
    if data.dim () <> 2L then raise (ArgumentException($"Only 2-D tensors are written, got shape %A{data.shape}.", "data"))
    use _ = torch.NewDisposeScope()
    let c = data.detach().to_type(torch.float32).cpu().contiguous()
    let rows, columns = int c.shape.[0], int c.shape.[1]
    let values = c.data<float32>().ToArray()
    AtomicFile.write path (fun s -> writeStream s rows columns (ReadOnlySpan values))

/// A versioned, checksummed binary file holding a model's kind, its options and its named tensors.
///
/// Layout (integers little-endian):
///   magic "RSRCHCKP" (8 bytes), int32 format version, kind string,
///   int32 option count, then per option a key string and a value string,
///   int32 tensor count, then per tensor: name string, int32 dtype code (1 = float32, 2 = float64),
///   int32 rank, rank × int64 dimensions, the elements as raw little-endian values in row-major order;
///   finally the CRC-32 (IEEE 802.3, as in zip and gzip) of every byte before it, as a uint32.
/// A string is an int32 byte length (at most MaxStringBytes) followed by that many bytes of UTF-8.
module internal Research.Core.Checkpoint

open System
open System.Buffers.Binary
open System.IO
open System.Runtime.InteropServices
open System.Text
open TorchSharp
open Research.Core.Interop

/// The format version this library writes, and the newest it reads.
[<Literal>]
let FormatVersion = 1

/// The longest string (kind, option key or value, tensor name), in UTF-8 bytes.
[<Literal>]
let MaxStringBytes = 1048576

/// The highest tensor rank accepted; far above any model's, low enough to bound a corrupt header.
[<Literal>]
let MaxRank = 64

/// A model snapshot: Kind names the model type (checked on load), Options holds its hyper-parameters
/// as text, Tensors its named parameters. Names and option keys must be unique; tensors must be
/// float32 or float64 and are stored with their dtype and shape.
type Checkpoint =
    { /// The model type, e.g. "vae" or "autoencoder"; load refuses a file of another kind.
      Kind: string
      /// The hyper-parameters as (key, text value) pairs, in the order written.
      Options: (string * string) list
      /// The named parameter tensors (float32 or float64), in the order written.
      Tensors: (string * Tensor) list }

let private magic = "RSRCHCKP"B

let private dtypeCode (t: torch.ScalarType) =
    match t with
    | torch.ScalarType.Float32 -> Some 1
    | torch.ScalarType.Float64 -> Some 2
    | _ -> None

/// Bytes per element of a dtype code, or None for an unknown code.
let private elementSize (code: int) =
    match code with
    | 1 -> Some 4
    | 2 -> Some 8
    | _ -> None

/// Strict UTF-8: invalid bytes on read and unpaired surrogates on write are errors, not '?'.
let private utf8 = UTF8Encoding(false, true)

/// Writes primitives to a stream while accumulating the CRC of everything written.
type private Sink(s: Stream) =
    let scratch = Array.zeroCreate<byte> 8
    let mutable crc = Idx.Crc32.start

    member _.Bytes(bytes: ReadOnlySpan<byte>) =
        crc <- Idx.Crc32.update crc bytes
        s.Write bytes

    member this.Int32(v: int) =
        BinaryPrimitives.WriteInt32LittleEndian(Span scratch, v)
        this.Bytes(ReadOnlySpan(scratch, 0, 4))

    member this.Int64(v: int64) =
        BinaryPrimitives.WriteInt64LittleEndian(Span scratch, v)
        this.Bytes(ReadOnlySpan(scratch, 0, 8))

    member this.String(v: string) =
        let bytes = utf8.GetBytes v
        this.Int32 bytes.Length
        this.Bytes(ReadOnlySpan bytes)

    /// The checksum, written uncounted since it covers only the bytes before it.
    member _.Finish() =
        BinaryPrimitives.WriteUInt32LittleEndian(Span scratch, ~~~crc)
        s.Write(ReadOnlySpan(scratch, 0, 4))

/// Rejects what the format cannot store before a single byte is written.
let private validate (c: Checkpoint) =
    let checkString (what: string) (v: string) =
        if isNull v then raise (ArgumentNullException(what, $"The checkpoint's {what} is null."))
        let n =
            try utf8.GetByteCount v
            with :? EncoderFallbackException as e ->
                raise (ArgumentException($"The checkpoint's {what} is not valid UTF-16 (unpaired surrogate).", what, e))
        if n > MaxStringBytes then
            raise (ArgumentException($"The checkpoint's {what} is {n} UTF-8 bytes long; at most {MaxStringBytes} are allowed.", what))
    let checkUnique (what: string) (names: string list) =
        match names |> List.countBy id |> List.tryFind (fun (_, k) -> k > 1) with
        | Some(n, _) -> raise (ArgumentException($"The {what} \"{n}\" appears more than once in the checkpoint.", what))
        | None -> ()
    checkString "kind" c.Kind
    if isNull (box c.Options) then nullArg "Options"
    if isNull (box c.Tensors) then nullArg "Tensors"
    for k, v in c.Options do
        checkString "option key" k
        checkString $"value of option \"{k}\"" v
    checkUnique "option key" (c.Options |> List.map fst)
    for name, t in c.Tensors do
        checkString "tensor name" name
        if isNull t then raise (ArgumentNullException("Tensors", $"Tensor \"{name}\" is null."))
        if (dtypeCode t.dtype).IsNone then
            raise (ArgumentException($"Tensor \"{name}\" has dtype {t.dtype}; only float32 and float64 can be stored.", "Tensors"))
        if t.dim () > int64 MaxRank then
            raise (ArgumentException($"Tensor \"{name}\" has rank {t.dim ()}; at most {MaxRank} is supported.", "Tensors"))
        if t.numel () * int64 (t.element_size ()) > int64 Array.MaxLength then
            raise (ArgumentException($"Tensor \"{name}\" is larger than {Array.MaxLength} bytes, the largest supported.", "Tensors"))
    checkUnique "tensor name" (c.Tensors |> List.map fst)

/// Writes the tensor's elements as little-endian bytes, from a contiguous CPU copy.
let private writeData (sink: Sink) (t: Tensor) =
    use detached = t.detach ()
    use onCpu = detached.cpu () // may be detached itself; disposing twice is harmless
    use c = onCpu.contiguous ()
    if c.numel () > 0L then
        match c.dtype with
        | torch.ScalarType.Float32 ->
            let values = c.data<float32>().ToArray()
            let asInts = MemoryMarshal.Cast<float32, int>(Span values)
            if not BitConverter.IsLittleEndian then BinaryPrimitives.ReverseEndianness(Span<int>.op_Implicit asInts, asInts)
            sink.Bytes(MemoryMarshal.AsBytes(Span<float32>.op_Implicit (Span values)))
        | _ ->
            let values = c.data<float>().ToArray()
            let asLongs = MemoryMarshal.Cast<float, int64>(Span values)
            if not BitConverter.IsLittleEndian then BinaryPrimitives.ReverseEndianness(Span<int64>.op_Implicit asLongs, asLongs)
            sink.Bytes(MemoryMarshal.AsBytes(Span<float>.op_Implicit (Span values)))

/// Writes a checkpoint to a stream in the format above (version FormatVersion). The checkpoint is
/// validated first, so invalid input (null or over-long strings, duplicate names, unsupported dtypes)
/// throws ArgumentException before anything is written. The stream is not flushed or closed.
let write (stream: Stream) (checkpoint: Checkpoint) : unit =
    if isNull stream then nullArg "stream"
    validate checkpoint
    let sink = Sink stream
    sink.Bytes(ReadOnlySpan magic)
    sink.Int32 FormatVersion
    sink.String checkpoint.Kind
    sink.Int32 checkpoint.Options.Length
    for k, v in checkpoint.Options do
        sink.String k
        sink.String v
    sink.Int32 checkpoint.Tensors.Length
    for name, t in checkpoint.Tensors do
        sink.String name
        let code = (dtypeCode t.dtype).Value
        sink.Int32 code
        sink.Int32(int (t.dim ()))
        for d in t.shape do sink.Int64 d
        writeData sink t
    sink.Finish()

/// Reads primitives from a stream while accumulating the CRC, checking every length against what the
/// stream still holds (when it can tell) before allocating, and failing with InvalidDataException.
type private Source(source: string, s: Stream) =
    let scratch = Array.zeroCreate<byte> 8
    let mutable crc = Idx.Crc32.start

    member _.Fail(what: string) : 'a = raise (InvalidDataException($"Checkpoint {source}: {what}"))

    /// Bytes left in the stream, when it is seekable.
    member _.Remaining = if s.CanSeek then Some(s.Length - s.Position) else None

    /// Fills buffer completely or fails, naming what was being read.
    member this.Fill(buffer: Span<byte>, what: string) =
        let mutable got = 0
        while got < buffer.Length do
            let n = s.Read(buffer.Slice got)
            if n = 0 then this.Fail $"truncated: the stream ended {buffer.Length - got} byte(s) short while reading {what}"
            got <- got + n

    member this.Bytes(count: int64, what: string) : byte[] =
        if count < 0L || count > int64 Array.MaxLength then this.Fail $"invalid length {count} for {what}"
        match this.Remaining with
        | Some r when r < count -> this.Fail $"truncated: {what} needs {count} bytes but only {r} remain"
        | _ -> ()
        let n = int count
        let result =
            if this.Remaining.IsSome then
                let buffer = Array.zeroCreate<byte> n
                this.Fill(Span buffer, what)
                buffer
            else
                // Unknown length: grow with the data actually read so a lying length costs little memory.
                let mutable buffer = Array.zeroCreate<byte> (min n (1 <<< 20))
                let mutable filled = 0
                while filled < n do
                    if filled = buffer.Length then Array.Resize(&buffer, int (min count (2L * int64 buffer.Length)))
                    this.Fill(Span(buffer, filled, buffer.Length - filled), what)
                    filled <- buffer.Length
                buffer
        crc <- Idx.Crc32.update crc (ReadOnlySpan result)
        result

    member this.Int32(what: string) =
        this.Fill(Span(scratch, 0, 4), what)
        crc <- Idx.Crc32.update crc (ReadOnlySpan(scratch, 0, 4))
        BinaryPrimitives.ReadInt32LittleEndian(ReadOnlySpan(scratch, 0, 4))

    member this.Int64(what: string) =
        this.Fill(Span(scratch, 0, 8), what)
        crc <- Idx.Crc32.update crc (ReadOnlySpan(scratch, 0, 8))
        BinaryPrimitives.ReadInt64LittleEndian(ReadOnlySpan(scratch, 0, 8))

    member this.String(what: string) =
        let n = this.Int32 $"the length of {what}"
        if n < 0 || n > MaxStringBytes then
            this.Fail $"the length of {what} is {n}; it must be between 0 and {MaxStringBytes}"
        let bytes = this.Bytes(int64 n, what)
        try utf8.GetString bytes
        with :? DecoderFallbackException -> this.Fail $"{what} is not valid UTF-8"

    /// A count of entries each at least minBytes long, checked against the bytes left.
    member this.Count(what: string, minBytes: int64) =
        let n = this.Int32 what
        if n < 0 then this.Fail $"{what} is negative ({n})"
        match this.Remaining with
        | Some r when int64 n * minBytes > r -> this.Fail $"{what} is {n}, more than the {r} remaining bytes can hold"
        | _ -> ()
        n

    /// Reads the stored checksum, compares it with the one computed, and requires the stream to end.
    member this.Finish() =
        let computed = ~~~crc
        this.Fill(Span(scratch, 0, 4), "the checksum")
        let stored = BinaryPrimitives.ReadUInt32LittleEndian(ReadOnlySpan(scratch, 0, 4))
        if stored <> computed then
            this.Fail $"checksum mismatch (stored 0x%08X{stored}, computed 0x%08X{computed}): the data is corrupt"
        let trailing =
            match this.Remaining with
            | Some r -> r > 0L
            | None -> s.ReadByte() >= 0
        if trailing then this.Fail "unexpected bytes after the checksum"

/// A tensor as read: name, dtype code, shape and raw little-endian bytes, not yet a torch tensor.
type private RawTensor = { Name: string; Code: int; Shape: int64[]; Data: byte[] }

let private toTensor (raw: RawTensor) (device: torch.Device) : Tensor =
    let bytes = raw.Data
    if not BitConverter.IsLittleEndian then
        let size = (elementSize raw.Code).Value
        for i in 0 .. size .. bytes.Length - 1 do Array.Reverse(bytes, i, size)
    let shape = ReadOnlySpan raw.Shape
    match raw.Code with
    | 1 -> torch.tensor(MemoryMarshal.Cast<byte, float32>(ReadOnlySpan bytes).ToArray(), shape, device = device)
    | _ -> torch.tensor(MemoryMarshal.Cast<byte, float>(ReadOnlySpan bytes).ToArray(), shape, device = device)

let private readNamed (source: string) (stream: Stream) (expectedKind: string) (device: torch.Device) : Checkpoint =
    let src = Source(source, stream)
    let head = src.Bytes(int64 magic.Length, "the magic number")
    if not (ReadOnlySpan(head).SequenceEqual(ReadOnlySpan magic)) then
        src.Fail "bad magic number: this is not a Research checkpoint"
    // The version comes before anything else is parsed: a newer layout may differ from here on.
    let version = src.Int32 "the format version"
    if version > FormatVersion then
        src.Fail $"format version {version} is newer than version {FormatVersion}, the newest this library reads; upgrade Research"
    if version < 1 then src.Fail $"invalid format version {version}"
    let kind = src.String "the kind"
    let optionCount = src.Count("the option count", 8L)
    let options =
        List.init optionCount (fun i ->
            let k = src.String $"the key of option {i}"
            k, src.String $"the value of option \"{k}\"")
    // Name length, dtype code and rank: 12 bytes at least per tensor.
    let tensorCount = src.Count("the tensor count", 12L)
    let raws =
        List.init tensorCount (fun i ->
            let name = src.String $"the name of tensor {i}"
            let code = src.Int32 $"the dtype of tensor \"{name}\""
            let size =
                match elementSize code with
                | Some s -> s
                | None -> src.Fail $"tensor \"{name}\" has unknown dtype code {code} (1 = float32, 2 = float64)"
            let rank = src.Int32 $"the rank of tensor \"{name}\""
            if rank < 0 || rank > MaxRank then src.Fail $"tensor \"{name}\" has rank {rank}; it must be between 0 and {MaxRank}"
            match src.Remaining with
            | Some r when 8L * int64 rank > r -> src.Fail $"truncated: tensor \"{name}\" declares {rank} dimensions but {r} bytes remain"
            | _ -> ()
            let shape = Array.init rank (fun d -> src.Int64 $"dimension {d} of tensor \"{name}\"")
            // Dimensions are non-negative and their product, in bytes, must fit in one .NET array;
            // checking after each factor keeps the int64 product from overflowing.
            let mutable bytes = int64 size
            for d in shape do
                if d < 0L then src.Fail $"tensor \"{name}\" has negative dimension {d} in shape %A{shape}"
                if d > 0L && bytes > int64 Array.MaxLength / d then
                    src.Fail $"tensor \"{name}\" with shape %A{shape} is larger than {Array.MaxLength} bytes"
                bytes <- bytes * d
            let data = src.Bytes(bytes, $"the data of tensor \"{name}\"")
            { Name = name; Code = code; Shape = shape; Data = data })
    src.Finish()
    let duplicate (names: string list) = names |> List.countBy id |> List.tryFind (fun (_, k) -> k > 1)
    match duplicate (List.map fst options) with
    | Some(k, _) -> src.Fail $"option \"{k}\" appears more than once"
    | None -> ()
    match duplicate (raws |> List.map (fun r -> r.Name)) with
    | Some(n, _) -> src.Fail $"tensor \"{n}\" appears more than once"
    | None -> ()
    // Checked after the checksum, so a corrupt kind is reported as corruption, not as the wrong model.
    if kind <> expectedKind then
        src.Fail $"expected a checkpoint of kind \"{expectedKind}\" but it holds kind \"{kind}\""
    let tensors = ResizeArray()
    try
        for r in raws do tensors.Add((r.Name, toTensor r device))
    with _ ->
        for _, t in tensors do t.Dispose()
        reraise ()
    { Kind = kind; Options = options; Tensors = List.ofSeq tensors }

/// Reads one checkpoint that fills the rest of the stream, checking magic, version, every length
/// and the checksum, then that its kind equals expectedKind; tensors are created on device.
/// Throws InvalidDataException saying what is wrong (naming both versions for a newer format and
/// both kinds for the wrong model) and allocates nothing a corrupt length asks for.
let read (stream: Stream) (expectedKind: string) (device: torch.Device) : Checkpoint =
    if isNull stream then nullArg "stream"
    if isNull expectedKind then nullArg "expectedKind"
    let source = match stream with :? FileStream as f -> f.Name | _ -> "<stream>"
    readNamed source stream expectedKind device

/// Like save, but opens the temporary file through openTemp (given its path); lets callers and tests
/// wrap the stream, for example to inject a fault. A FileStream is flushed to disk before the rename.
let saveWith (openTemp: string -> Stream) (path: string) (checkpoint: Checkpoint) : unit =
    if isNull path then nullArg "path"
    AtomicFile.writeWith openTemp path (fun s -> write s checkpoint)

/// Saves a checkpoint atomically (AtomicFile.write): it is written to a temporary file in the same
/// folder, flushed to disk, then renamed over path. On any failure a previous file at path is left
/// untouched and the temporary file is removed.
let save (path: string) (checkpoint: Checkpoint) : unit = saveWith AtomicFile.openTemp path checkpoint

/// Loads a checkpoint file, as read does. Throws FileNotFoundException if the file is missing and
/// InvalidDataException, naming the file, if its content is invalid or of another kind.
let load (path: string) (expectedKind: string) (device: torch.Device) : Checkpoint =
    if isNull path then nullArg "path"
    if not (File.Exists path) then raise (FileNotFoundException($"Checkpoint file not found: {path}", path))
    use s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 65536)
    read s expectedKind device

/// Reads IDX files, the format MNIST ships in, raw or gzip-compressed, validating every header field.
module Research.Core.Idx

open System
open System.Buffers.Binary
open System.IO
open System.IO.Compression

/// An IDX array of unsigned bytes (type code 0x08, the only type MNIST uses): its dimensions,
/// outermost first, and its elements in row-major order. Other IDX element types are rejected.
type IdxArray =
    { /// The size of each dimension, outermost first ([n; 28; 28] for MNIST images).
      Dimensions: int[]
      /// The elements in row-major order; its length is the product of Dimensions.
      Data: byte[] }

/// Type code of unsigned bytes, the only element type this reader accepts.
let private UnsignedByte = 0x08uy

let private typeName (code: byte) =
    match code with
    | 0x08uy -> "unsigned byte"
    | 0x09uy -> "signed byte"
    | 0x0Buy -> "int16"
    | 0x0Cuy -> "int32"
    | 0x0Duy -> "float32"
    | 0x0Euy -> "float64"
    | _ -> "unknown"

let private fail (source: string) (what: string) : 'a =
    raise (InvalidDataException($"IDX file {source}: {what}"))

/// CRC-32 with the reflected IEEE polynomial 0xEDB88320, as in gzip's trailer (System.IO.Hashing is
/// not referenced). Checkpoint uses it too; it lives here because Idx is first in compile order.
module internal Crc32 =
    let private table =
        Array.init 256 (fun n ->
            let mutable c = uint32 n
            for _ in 1..8 do
                c <- if c &&& 1u <> 0u then 0xEDB88320u ^^^ (c >>> 1) else c >>> 1
            c)

    /// The initial register value; the CRC is the bitwise complement of the register after all updates.
    let start = 0xFFFFFFFFu

    /// Feeds bytes into a register value.
    let update (crc: uint32) (bytes: ReadOnlySpan<byte>) =
        let mutable c = crc
        for i in 0 .. bytes.Length - 1 do
            c <- table.[int ((c ^^^ uint32 bytes.[i]) &&& 0xFFu)] ^^^ (c >>> 8)
        c

/// A read-only pass-through stream that first replays bytes already consumed (the sniffed magic), and
/// records the count, CRC-32 and last 8 bytes of everything read: on the compressed side that tail is
/// the gzip trailer, on the decompressed side count and CRC are what the trailer must state.
type private Tracking(prefix: byte[], inner: Stream) =
    inherit Stream()
    let mutable at = 0
    let mutable count = 0L
    let mutable crc = Crc32.start
    let tail = Array.zeroCreate<byte> 8

    let record (bytes: ReadOnlySpan<byte>) =
        crc <- Crc32.update crc bytes
        count <- count + int64 bytes.Length
        // Keep the last 8 bytes seen: shift the old ones left, append the new ones.
        let keep = max 0 (8 - bytes.Length)
        Buffer.BlockCopy(tail, 8 - keep, tail, 0, keep)
        bytes.Slice(bytes.Length - min bytes.Length 8).CopyTo(Span(tail, keep, 8 - keep))

    /// Bytes read so far.
    member _.Count = count
    /// CRC-32 of the bytes read so far.
    member _.Crc = ~~~crc
    /// The last 8 bytes read (zero-padded on the left when fewer were read).
    member _.Tail = tail
    override _.CanRead = true
    override _.CanSeek = false
    override _.CanWrite = false
    override _.Length = raise (NotSupportedException())
    override _.Position
        with get () = raise (NotSupportedException())
        and set _ = raise (NotSupportedException())
    override _.Flush() = ()
    override _.Seek(_, _) = raise (NotSupportedException())
    override _.SetLength _ = raise (NotSupportedException())
    override _.Write(_, _, _) = raise (NotSupportedException())
    // Span reads are overridden too: Stream's default would rent a buffer as large as the request.
    override _.Read(buffer: Span<byte>) =
        let got =
            if at < prefix.Length then
                let k = min buffer.Length (prefix.Length - at)
                ReadOnlySpan(prefix, at, k).CopyTo buffer
                at <- at + k
                k
            else inner.Read buffer
        record (Span<byte>.op_Implicit (buffer.Slice(0, got)))
        got
    override this.Read(buffer: byte[], offset: int, n: int) = this.Read(Span(buffer, offset, n))

/// Reads up to buffer.Length bytes, stopping early only at the end of the stream; returns the count read.
let private readAtMost (s: Stream) (buffer: Span<byte>) =
    let mutable total = 0
    let mutable finished = false
    while not finished && total < buffer.Length do
        let n = s.Read(buffer.Slice total)
        if n = 0 then finished <- true else total <- total + n
    total

/// Parses an IDX body (header and data) from a stream of unknown length. remaining is the number of
/// bytes left in the stream when it is known (raw seekable streams), so sizes are checked before allocating.
let private parse (source: string) (s: Stream) (remaining: int64 option) : IdxArray =
    let header = Array.zeroCreate<byte> 4
    let got = readAtMost s (Span header)
    if got < 4 then fail source $"the file is {got} byte(s) long, shorter than the 4-byte IDX magic number"
    if header.[0] <> 0uy || header.[1] <> 0uy then
        fail source $"bad magic number: the first two bytes are 0x%02X{header.[0]} 0x%02X{header.[1]}, expected 0x00 0x00"
    if header.[2] <> UnsignedByte then
        fail source
            $"unsupported element type code 0x%02X{header.[2]} ({typeName header.[2]}): only 0x08 (unsigned byte) is supported"
    let rank = int header.[3]
    if rank = 0 then fail source "the header declares 0 dimensions"
    let remainingAfter consumed = remaining |> Option.map (fun r -> r - consumed)
    match remainingAfter 4L with
    | Some r when r < int64 (4 * rank) ->
        fail source $"truncated header: {rank} dimensions need {4 * rank} bytes but only {r} remain"
    | _ -> ()
    let dimBytes = Array.zeroCreate<byte> (4 * rank)
    let got = readAtMost s (Span dimBytes)
    if got < dimBytes.Length then
        fail source $"truncated header: {rank} dimensions need {dimBytes.Length} bytes but only {got} remain"
    let dims = Array.init rank (fun i -> BinaryPrimitives.ReadInt32BigEndian(ReadOnlySpan(dimBytes, 4 * i, 4)))
    dims |> Array.iteri (fun i d -> if d <= 0 then fail source $"dimension {i} is {d}; every dimension must be positive")
    // The product is formed in int64 and capped at the largest .NET array, so no dims can overflow it.
    let mutable count = 1L
    for d in dims do
        count <- count * int64 d
        if count > int64 Array.MaxLength then
            fail source $"the dimensions %A{dims} declare more than {Array.MaxLength} elements, the largest supported array"
    let declared = int count
    match remainingAfter (4L + int64 dimBytes.Length) with
    | Some r when r < count -> fail source $"truncated data: the header declares {declared} bytes of data but only {r} remain"
    | Some r when r > count -> fail source $"{r - count} trailing byte(s) after the {declared} bytes of data the header declares"
    | Some _ -> ()
    | None -> ()
    let data =
        match remaining with
        | Some _ ->
            // Length already checked against the stream, so allocating the declared size is safe.
            let data = Array.zeroCreate<byte> declared
            let got = readAtMost s (Span data)
            if got < declared then fail source $"truncated data: the header declares {declared} bytes but only {got} were read"
            data
        | None ->
            // Unknown length (gzip, pipes): grow the buffer with the data actually read, never past the
            // declared size, so a lying header on a short stream costs little memory.
            let mutable buffer = Array.zeroCreate<byte> (min declared (1 <<< 20))
            let mutable filled = 0
            let mutable ended = false
            while not ended && filled < declared do
                if filled = buffer.Length then
                    let grown = int (min (int64 declared) (2L * int64 buffer.Length))
                    Array.Resize(&buffer, grown)
                let n = s.Read(buffer, filled, buffer.Length - filled)
                if n = 0 then ended <- true else filled <- filled + n
            if filled < declared then
                fail source $"truncated data: the header declares {declared} bytes but the stream ended after {filled}"
            buffer
    if remaining.IsNone && s.ReadByte() >= 0 then
        fail source $"trailing bytes after the {declared} bytes of data the header declares"
    { Dimensions = dims; Data = data }

/// Parses a stream, naming source in error messages; detects gzip by its magic bytes 1F 8B.
let private readNamed (source: string) (s: Stream) : IdxArray =
    let magic = Array.zeroCreate<byte> 2
    let got = readAtMost s (Span magic)
    let gzip = got = 2 && magic.[0] = 0x1Fuy && magic.[1] = 0x8Buy
    if gzip then
        let compressed = new Tracking(magic, s)
        use unzipped = new GZipStream(compressed, CompressionMode.Decompress, leaveOpen = true)
        let content = new Tracking([||], unzipped)
        let result =
            try parse source content None
            with :? InvalidDataException as e when not (e.Message.StartsWith "IDX file") ->
                // The decompressor's own complaint does not say which file; add it.
                raise (InvalidDataException($"IDX file {source}: corrupt gzip data: {e.Message}", e))
        // parse read the content to its end, so the decompressor has consumed its whole input and the
        // last 8 input bytes are the trailer. GZipStream accepts a stream cut inside its trailer (or
        // just before it) silently; checking the trailer here catches that truncation.
        let storedCrc = BinaryPrimitives.ReadUInt32LittleEndian(ReadOnlySpan(compressed.Tail, 0, 4))
        let storedSize = BinaryPrimitives.ReadUInt32LittleEndian(ReadOnlySpan(compressed.Tail, 4, 4))
        if compressed.Count < 18L || storedCrc <> content.Crc || storedSize <> uint32 content.Count then
            fail source "the gzip trailer is missing or wrong: the file is truncated or corrupt (only single-member gzip is supported)"
        result
    else
        let remaining = if s.CanSeek then Some(s.Length - s.Position + int64 got) else None
        parse source (new Tracking(Array.sub magic 0 got, s)) remaining

/// Reads an IDX array from a stream positioned at its first byte; the stream must end with the data.
/// Raw and gzip-compressed content are both accepted (gzip is recognised by its magic bytes 1F 8B).
/// Throws InvalidDataException describing the problem for any malformed, truncated or over-long content.
let readStream (s: Stream) : IdxArray =
    if isNull s then nullArg "s"
    let source = match s with :? FileStream as f -> f.Name | _ -> "<stream>"
    readNamed source s

/// Reads an IDX file, raw or gzip-compressed (recognised by content, not by file name).
/// Throws FileNotFoundException if the file is missing and InvalidDataException, naming the file,
/// if its content is malformed.
let read (path: string) : IdxArray =
    if isNull path then nullArg "path"
    if not (File.Exists path) then raise (FileNotFoundException($"IDX file not found: {path}", path))
    use s = File.OpenRead path
    readNamed path s

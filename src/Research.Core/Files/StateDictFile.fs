/// The file that `torch.save(module.state_dict(), path)` writes (PyTorch ≥ 1.6), for a state_dict of float
/// tensors, written and read without Python:
///
/// a zip archive (entries stored, not compressed) whose entries all sit in one top folder (`archive/` here;
/// PyTorch names it after the file) and hold
///   `data.pkl`   the pickle (protocol 2) of an OrderedDict name → tensor, each tensor the call
///                `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())` whose
///                storage is the persistent id `('storage', torch.FloatStorage, key, 'cpu', numel)`;
///   `data/<key>` that storage's elements, raw little-endian;
///   `version`    the serialisation format, "3".
/// Later PyTorch versions add records such as `byteorder` ("little"); the reader checks that one and ignores
/// the others. The reader runs no Python and builds no object but dictionaries, tuples, strings,
/// numbers and tensors: the pickle may name only OrderedDict, the tensor rebuild functions and storage types.
module Research.Core.StateDictFile

open System
open System.Buffers.Binary
open System.Collections.Generic
open System.IO
open System.IO.Compression
open System.Runtime.InteropServices
open System.Text
open TorchSharp

type Tensor = torch.Tensor

/// The largest `data.pkl` read: a state_dict's pickle holds names and shapes only, kilobytes for any MLP.
[<Literal>]
let MaxPickleBytes = 64 * 1024 * 1024

/// The highest tensor rank accepted.
[<Literal>]
let MaxRank = 64

/// The top folder of the archives written here (what torch.save uses when it writes to a buffer).
[<Literal>]
let ArchiveName = "archive"

// ---- Writing ----------------------------------------------------------------------------------------

/// A protocol-2 pickle of an OrderedDict of tensors, the storage of tensor i being key "i".
type private Pickler() =
    let out = new MemoryStream()
    let scratch = Array.zeroCreate<byte> 8

    member _.Op(code: byte) = out.WriteByte code
    member this.Global(m: string, name: string) =
        this.Op 'c'B
        out.Write(Encoding.ASCII.GetBytes(m + "\n" + name + "\n"))
    member this.Str(s: string) =
        let bytes = Encoding.UTF8.GetBytes s
        this.Op 'X'B // BINUNICODE: uint32 length, UTF-8
        BinaryPrimitives.WriteUInt32LittleEndian(Span scratch, uint32 bytes.Length)
        out.Write(ReadOnlySpan(scratch, 0, 4))
        out.Write bytes
    member this.Int(v: int64) =
        if v >= 0L && v < 256L then
            this.Op 'K'B // BININT1
            out.WriteByte(byte v)
        elif v >= int64 Int32.MinValue && v <= int64 Int32.MaxValue then
            this.Op 'J'B // BININT: int32
            BinaryPrimitives.WriteInt32LittleEndian(Span scratch, int v)
            out.Write(ReadOnlySpan(scratch, 0, 4))
        else
            this.Op 0x8auy // LONG1: 8 bytes of two's complement
            out.WriteByte 8uy
            BinaryPrimitives.WriteInt64LittleEndian(Span scratch, v)
            out.Write(ReadOnlySpan(scratch, 0, 8))
    member this.IntTuple(vs: int64 seq) =
        this.Op '('B // MARK
        for v in vs do this.Int v
        this.Op 't'B // TUPLE
    member this.EmptyOrderedDict() =
        this.Global("collections", "OrderedDict")
        this.Op ')'B // EMPTY_TUPLE
        this.Op 'R'B // REDUCE
    member _.Bytes() = out.ToArray()

/// The pickle of the state_dict `tensors` (contiguous, so strides are row-major).
let private pickle (tensors: (string * Tensor) list) =
    let p = Pickler()
    p.Op 0x80uy // PROTO 2
    p.Op 2uy
    p.EmptyOrderedDict()
    p.Op '('B
    tensors |> List.iteri (fun i (name, t) ->
        p.Str name
        p.Global("torch._utils", "_rebuild_tensor_v2")
        p.Op '('B
        p.Op '('B // the persistent id of the storage
        p.Str "storage"
        p.Global("torch", (if t.dtype = torch.ScalarType.Float64 then "DoubleStorage" else "FloatStorage"))
        p.Str(string i)
        p.Str "cpu"
        p.Int(t.numel ())
        p.Op 't'B
        p.Op 'Q'B // BINPERSID
        p.Int 0L // storage offset
        p.IntTuple t.shape
        p.IntTuple(Seq.init t.shape.Length (fun d -> Array.fold (*) 1L t.shape.[d + 1 ..]))
        p.Op 0x89uy // NEWFALSE: requires_grad
        p.EmptyOrderedDict() // backward hooks
        p.Op 't'B
        p.Op 'R'B)
    p.Op 'u'B // SETITEMS
    p.Op '.'B // STOP
    p.Bytes()

/// The elements of a tensor as little-endian bytes (float32 or float64), from a contiguous CPU copy.
let private elementBytes (t: Tensor) : byte[] =
    use _ = torch.NewDisposeScope()
    let c = t.detach().cpu().contiguous()
    let bytes =
        match c.dtype with
        | _ when c.numel () = 0L -> [||] // TorchSharp's accessor refuses to copy out an empty tensor
        | torch.ScalarType.Float32 -> MemoryMarshal.AsBytes(ReadOnlySpan(c.data<float32>().ToArray())).ToArray()
        | _ -> MemoryMarshal.AsBytes(ReadOnlySpan(c.data<float>().ToArray())).ToArray()
    if not BitConverter.IsLittleEndian then
        let size = int (c.element_size ())
        for i in 0 .. size .. bytes.Length - 1 do Array.Reverse(bytes, i, size)
    bytes

/// Zip entries carry a date; a fixed one makes the file a function of the tensors alone.
let private entryTime = DateTimeOffset(1980, 1, 1, 0, 0, 0, TimeSpan.Zero)

/// Writes the state_dict `tensors` (names unique, float32 or float64) to `stream` as torch.save does.
/// Invalid input throws ArgumentException before anything is written; the stream is left open.
let write (stream: Stream) (tensors: (string * Tensor) list) : unit =
    if isNull stream then nullArg "stream"
    match tensors |> List.countBy fst |> List.tryFind (fun (_, k) -> k > 1) with
    | Some(n, _) -> raise (ArgumentException($"The tensor name '{n}' appears more than once.", "tensors"))
    | None -> ()
    for name, t in tensors do
        if isNull name then raise (ArgumentNullException("tensors", "A tensor name is null."))
        if isNull t then raise (ArgumentNullException("tensors", $"Tensor '{name}' is null."))
        if t.dtype <> torch.ScalarType.Float32 && t.dtype <> torch.ScalarType.Float64 then
            raise (ArgumentException($"Tensor '{name}' has dtype {t.dtype}; only float32 and float64 are written.", "tensors"))
    use zip = new ZipArchive(stream, ZipArchiveMode.Create, true)
    let entry (name: string) (bytes: byte[]) =
        let e = zip.CreateEntry($"{ArchiveName}/{name}", CompressionLevel.NoCompression)
        e.LastWriteTime <- entryTime
        use s = e.Open()
        s.Write(bytes, 0, bytes.Length)
    entry "data.pkl" (pickle tensors)
    tensors |> List.iteri (fun i (_, t) -> entry $"data/{i}" (elementBytes t))
    entry "version" "3\n"B

/// Writes the state_dict `tensors` to `path` atomically (AtomicFile).
let save (path: string) (tensors: (string * Tensor) list) : unit = AtomicFile.write path (fun s -> write s tensors)

// ---- Reading ----------------------------------------------------------------------------------------

/// A storage of the file: its record key, element type (float32 or float64, or the name of another) and length.
type private StorageRef = { Key: string; Type: string; Numel: int64 }

/// The values a state_dict's pickle is made of; anything else in the pickle is refused.
[<RequireQualifiedAccess>]
type private Py =
    | None
    | Bool of bool
    | Int of int64
    | Float of float
    | Str of string
    | Tuple of Py list
    | List of ResizeArray<Py>
    | Dict of ResizeArray<Py * Py>
    | Global of string * string
    | Storage of StorageRef
    | Tensor of storage: StorageRef * offset: int64 * size: int64 list * stride: int64 list
    | Mark

let rec private describe (v: Py) =
    match v with
    | Py.None -> "None"
    | Py.Bool _ -> "a bool"
    | Py.Int _ -> "an int"
    | Py.Float _ -> "a float"
    | Py.Str _ -> "a string"
    | Py.Tuple _ -> "a tuple"
    | Py.List _ -> "a list"
    | Py.Dict _ -> "a dict"
    | Py.Global(m, n) -> $"{m}.{n}"
    | Py.Storage _ -> "a storage"
    | Py.Tensor _ -> "a tensor"
    | Py.Mark -> "a mark"

/// The element types read, by storage class name, with their sizes in bytes.
let private storageTypes = dict [ "FloatStorage", (torch.ScalarType.Float32, 4); "DoubleStorage", (torch.ScalarType.Float64, 8) ]

/// The bytes of `data.pkl` with a read position; every read past the end fails.
type private PickleBytes(data: byte[], fail: string -> exn) =
    let mutable pos = 0
    member _.Position = pos
    member _.Bytes(n: int64, what: string) : byte[] =
        if n < 0L || int64 pos + n > int64 data.Length then raise (fail $"data.pkl is truncated or damaged: {what} runs past its end")
        let b = data.[pos .. pos + int n - 1]
        pos <- pos + int n
        b
    member this.Byte(what) = (this.Bytes(1L, what)).[0]
    member this.UInt16(what) = BinaryPrimitives.ReadUInt16LittleEndian(ReadOnlySpan(this.Bytes(2L, what)))
    member this.Int32(what) = BinaryPrimitives.ReadInt32LittleEndian(ReadOnlySpan(this.Bytes(4L, what)))
    member this.UInt32(what) = BinaryPrimitives.ReadUInt32LittleEndian(ReadOnlySpan(this.Bytes(4L, what)))
    member this.Int64(what) = BinaryPrimitives.ReadInt64LittleEndian(ReadOnlySpan(this.Bytes(8L, what)))
    member this.Double(what) = BinaryPrimitives.ReadDoubleBigEndian(ReadOnlySpan(this.Bytes(8L, what)))
    member _.Line(what: string) =
        let i = Array.IndexOf(data, '\n'B, pos)
        if i < 0 then raise (fail $"data.pkl is truncated or damaged: {what} has no end of line")
        let s = Encoding.ASCII.GetString(data, pos, i - pos)
        pos <- i + 1
        s

let private isMark (v: Py) = match v with Py.Mark -> true | _ -> false

/// Runs the protocol ≤ 5 opcodes a state_dict's pickle uses, building only the values of Py.
let private unpickle (fail: string -> exn) (data: byte[]) : Py =
    let input = PickleBytes(data, fail)
    let stack = ResizeArray<Py>()
    let memo = Dictionary<int64, Py>()
    let pop () =
        if stack.Count = 0 || isMark stack.[stack.Count - 1] then
            raise (fail $"data.pkl is damaged: stack underflow at byte {input.Position}")
        let v = stack.[stack.Count - 1]
        stack.RemoveAt(stack.Count - 1)
        v
    let top () =
        if stack.Count = 0 then raise (fail $"data.pkl is damaged: stack underflow at byte {input.Position}")
        stack.[stack.Count - 1]
    let popToMark () =
        let m = stack.FindLastIndex(fun v -> isMark v)
        if m < 0 then raise (fail $"data.pkl is damaged: no mark at byte {input.Position}")
        let items = [ for i in m + 1 .. stack.Count - 1 -> stack.[i] ]
        stack.RemoveRange(m, stack.Count - m)
        items
    let str (n: int64) (encoding: Encoding) =
        let bytes = input.Bytes(n, "a string")
        try stack.Add(Py.Str(encoding.GetString bytes))
        with :? DecoderFallbackException -> raise (fail "data.pkl holds a string that is not valid UTF-8")
    let toInt what v = match v with Py.Int i -> i | other -> raise (fail $"data.pkl: {what} is {describe other}, not an int")
    let toInts what v =
        match v with
        | Py.Tuple items -> items |> List.map (toInt what)
        | other -> raise (fail $"data.pkl: {what} is {describe other}, not a tuple of ints")
    let tensorOf (args: Py list) =
        match args with
        | Py.Storage s :: offset :: size :: stride :: _ ->
            Py.Tensor(s, toInt "a storage offset" offset, toInts "a tensor size" size, toInts "a tensor stride" stride)
        | _ -> raise (fail "data.pkl: a tensor is rebuilt from arguments that are not (storage, offset, size, stride, …)")
    let reduce (callable: Py) (args: Py) =
        let args = match args with Py.Tuple a -> a | other -> raise (fail $"data.pkl: a call's arguments are {describe other}, not a tuple")
        match callable, args with
        | Py.Global("collections", "OrderedDict"), [] -> Py.Dict(ResizeArray())
        | Py.Global("torch._utils", ("_rebuild_tensor_v2" | "_rebuild_tensor")), _ -> tensorOf args
        | Py.Global("torch._utils", ("_rebuild_parameter" | "_rebuild_parameter_with_state")), (Py.Tensor _ as t) :: _ -> t
        | Py.Global(m, n), _ -> raise (fail $"data.pkl calls {m}.{n}: a state_dict of tensors holds only OrderedDict and tensors")
        | other, _ -> raise (fail $"data.pkl calls {describe other}, which is not a function")
    let utf8 = UTF8Encoding(false, true)
    let mutable result = None
    while result.IsNone do
        let op = input.Byte "an opcode"
        match op with
        | 0x80uy -> // PROTO
            let v = input.Byte "the protocol"
            if v > 5uy then raise (fail $"data.pkl uses pickle protocol {v}; protocols 2 to 5 are read")
        | 0x95uy -> input.Int64 "a frame length" |> ignore // FRAME: only a hint
        | '.'B -> result <- Some(pop ()) // STOP
        | 'c'B -> // GLOBAL
            let m = input.Line "a global's module"
            stack.Add(Py.Global(m, input.Line "a global's name"))
        | 0x93uy -> // STACK_GLOBAL
            let name = pop ()
            match pop (), name with
            | Py.Str m, Py.Str n -> stack.Add(Py.Global(m, n))
            | _ -> raise (fail "data.pkl: a global is named by values that are not strings")
        | 'q'B -> memo.[int64 (input.Byte "a memo index")] <- top () // BINPUT
        | 'r'B -> memo.[int64 (input.UInt32 "a memo index")] <- top () // LONG_BINPUT
        | 0x94uy -> memo.[int64 memo.Count] <- top () // MEMOIZE
        | 'h'B | 'j'B -> // BINGET, LONG_BINGET
            let i = if op = 'h'B then int64 (input.Byte "a memo index") else int64 (input.UInt32 "a memo index")
            match memo.TryGetValue i with
            | true, v -> stack.Add v
            | _ -> raise (fail $"data.pkl is damaged: memo entry {i} is read before it is written")
        | '('B -> stack.Add Py.Mark // MARK
        | ')'B -> stack.Add(Py.Tuple []) // EMPTY_TUPLE
        | 't'B -> stack.Add(Py.Tuple(popToMark ())) // TUPLE
        | 0x85uy -> // TUPLE1
            let a = pop ()
            stack.Add(Py.Tuple [ a ])
        | 0x86uy -> // TUPLE2
            let b = pop ()
            let a = pop ()
            stack.Add(Py.Tuple [ a; b ])
        | 0x87uy -> // TUPLE3
            let c = pop ()
            let b = pop ()
            let a = pop ()
            stack.Add(Py.Tuple [ a; b; c ])
        | 'X'B -> str (int64 (input.UInt32 "a string length")) utf8 // BINUNICODE
        | 0x8cuy -> str (int64 (input.Byte "a string length")) utf8 // SHORT_BINUNICODE
        | 0x8duy -> str (input.Int64 "a string length") utf8 // BINUNICODE8
        | 'U'B -> str (int64 (input.Byte "a string length")) Encoding.Latin1 // SHORT_BINSTRING (Python 2's bytes)
        | 'T'B -> str (int64 (input.Int32 "a string length")) Encoding.Latin1 // BINSTRING
        | 'K'B -> stack.Add(Py.Int(int64 (input.Byte "an int"))) // BININT1
        | 'M'B -> stack.Add(Py.Int(int64 (input.UInt16 "an int"))) // BININT2
        | 'J'B -> stack.Add(Py.Int(int64 (input.Int32 "an int"))) // BININT
        | 0x8auy -> // LONG1: little-endian two's complement
            let n = int (input.Byte "a long's length")
            if n > 8 then raise (fail $"data.pkl holds an integer of {n} bytes; at most 8 are read")
            let bytes = input.Bytes(int64 n, "a long")
            let mutable v = 0L
            for i in n - 1 .. -1 .. 0 do v <- (v <<< 8) ||| int64 bytes.[i]
            if n > 0 && n < 8 && bytes.[n - 1] >= 0x80uy then v <- v - (1L <<< (8 * n))
            stack.Add(Py.Int v)
        | 'G'B -> stack.Add(Py.Float(input.Double "a float")) // BINFLOAT
        | 0x88uy -> stack.Add(Py.Bool true) // NEWTRUE
        | 0x89uy -> stack.Add(Py.Bool false) // NEWFALSE
        | 'N'B -> stack.Add Py.None // NONE
        | '}'B -> stack.Add(Py.Dict(ResizeArray())) // EMPTY_DICT
        | ']'B -> stack.Add(Py.List(ResizeArray())) // EMPTY_LIST
        | 'a'B | 'e'B -> // APPEND, APPENDS
            let items = if op = 'a'B then [ pop () ] else popToMark ()
            match top () with
            | Py.List l -> l.AddRange items
            | other -> raise (fail $"data.pkl appends to {describe other}, not a list")
        | 's'B | 'u'B -> // SETITEM, SETITEMS
            let items =
                if op = 's'B then
                    let v = pop ()
                    [ pop (); v ]
                else popToMark ()
            if items.Length % 2 <> 0 then raise (fail "data.pkl is damaged: a dict update has a key without a value")
            match top () with
            | Py.Dict d -> for pair in List.chunkBySize 2 items do d.Add((pair.[0], pair.[1]))
            | other -> raise (fail $"data.pkl sets items of {describe other}, not a dict")
        | 'R'B -> // REDUCE
            let args = pop ()
            let callable = pop ()
            stack.Add(reduce callable args)
        | 'b'B -> // BUILD: the attributes of the OrderedDict (state_dict's _metadata), not needed
            pop () |> ignore
            match top () with
            | Py.Dict _ -> ()
            | other -> raise (fail $"data.pkl sets the attributes of {describe other}; a state_dict sets only its dict's")
        | 'Q'B -> // BINPERSID: a storage
            match pop () with
            | Py.Tuple [ Py.Str "storage"; Py.Global(_, storageType); Py.Str key; Py.Str _location; Py.Int numel ] ->
                stack.Add(Py.Storage { Key = key; Type = storageType; Numel = numel })
            | other -> raise (fail $"data.pkl refers to a persistent object ({describe other}) that is not a tensor storage")
        | 0x81uy | 0x92uy -> // NEWOBJ, NEWOBJ_EX: a Python object, which is never built here
            if op = 0x92uy then pop () |> ignore
            pop () |> ignore
            let cls = match pop () with Py.Global(m, n) -> $"{m}.{n}" | other -> describe other
            raise (fail $"data.pkl creates a {cls} object: a state_dict of tensors holds only OrderedDict and tensors (save model.state_dict(), not the model)")
        | '0'B -> pop () |> ignore // POP
        | '2'B -> stack.Add(top ()) // DUP
        | _ -> raise (fail $"data.pkl holds the pickle opcode 0x%02x{op} at byte {input.Position - 1}, which a state_dict does not use")
    result.Value

/// A named tensor as found in the pickle, before its data is read.
type private Entry = { Name: string; Storage: StorageRef; Offset: int64; Size: int64[]; Stride: int64[] }

/// The named tensors of a state_dict, in file order; anything but an OrderedDict (or dict) of tensors fails.
let private entries (fail: string -> exn) (root: Py) : Entry list =
    match root with
    | Py.Dict d ->
        [ for k, v in d ->
            match k, v with
            | Py.Str name, Py.Tensor(s, offset, size, stride) ->
                { Name = name; Storage = s; Offset = offset; Size = Array.ofList size; Stride = Array.ofList stride }
            | Py.Str name, other -> raise (fail $"the state_dict entry '{name}' is {describe other}, not a tensor")
            | other, _ -> raise (fail $"the state_dict has a key that is {describe other}, not a string") ]
    | other -> raise (fail $"the file holds {describe other}, not a state_dict (an OrderedDict of tensors)")

/// The tensor of `e` (a contiguous CPU copy) from the raw bytes of its storage, checking that its view fits.
let private tensorOf (fail: string -> exn) (e: Entry) (dtype: torch.ScalarType) (storage: Tensor) : Tensor =
    let rank = e.Size.Length
    if rank > MaxRank then raise (fail $"tensor '{e.Name}' has rank {rank}; at most {MaxRank} is read")
    if e.Stride.Length <> rank then raise (fail $"tensor '{e.Name}' has {rank} sizes but {e.Stride.Length} strides")
    if e.Offset < 0L || Array.exists (fun v -> v < 0L) e.Size || Array.exists (fun v -> v < 0L) e.Stride then
        raise (fail $"tensor '{e.Name}' has a negative offset, size or stride")
    if not (Array.contains 0L e.Size) then
        // The last element's index, offset + Σ (size − 1)·stride, must lie inside the storage.
        let last =
            try Array.fold2 (fun acc n s -> Checked.(+) acc (Checked.(*) (n - 1L) s)) e.Offset e.Size e.Stride
            with :? OverflowException -> Int64.MaxValue
        let held = storage.shape.[0]
        if last >= held then
            raise (fail $"tensor '{e.Name}' of shape %A{e.Size} reaches element {last} of storage '{e.Storage.Key}', which holds {held}")
    use view = storage.as_strided(e.Size, e.Stride, e.Offset)
    if view.dtype <> dtype then raise (fail $"tensor '{e.Name}' shares storage '{e.Storage.Key}' under another dtype")
    view.clone()

/// Reads a state_dict written by torch.save (or `write`) from `stream` (seekable): the named tensors in
/// file order, on the CPU, float32 or float64 as stored. `source` names the stream in messages. A file that is
/// not such a state_dict, or is damaged or cut short, throws InvalidDataException saying what is wrong.
let read (stream: Stream) (source: string) : (string * Tensor) list =
    if isNull stream then nullArg "stream"
    let fail (what: string) = InvalidDataException($"PyTorch state_dict {source}: {what}") :> exn
    let zip =
        try new ZipArchive(stream, ZipArchiveMode.Read, true)
        with :? InvalidDataException | :? EndOfStreamException as e ->
            raise (fail $"not a zip archive, as torch.save writes since PyTorch 1.6 (the older format is not read), or cut short: {e.Message}")
    use _ = zip
    let prefix =
        match Seq.tryHead zip.Entries with
        | Some e when e.FullName.Contains '/' -> e.FullName.Substring(0, e.FullName.IndexOf '/' + 1)
        | _ -> raise (fail "the zip archive has no top folder: it is not a torch.save file")
    let record (name: string) (maxBytes: int64) : byte[] option =
        match zip.GetEntry(prefix + name) with
        | null -> None
        | e ->
            if e.Length > maxBytes then raise (fail $"the record '{name}' is {e.Length} bytes, more than the {maxBytes} expected")
            let bytes = Array.zeroCreate<byte> (int e.Length)
            try
                use s = e.Open()
                s.ReadExactly(bytes, 0, bytes.Length)
            with :? InvalidDataException | :? EndOfStreamException | :? IOException as ex ->
                raise (fail $"the record '{name}' is damaged: {ex.Message}")
            // A stored CRC of 0 means none was written (torch.serialization.set_crc32_options(False)).
            let crc = ~~~(Idx.Crc32.update Idx.Crc32.start (ReadOnlySpan bytes))
            if e.Crc32 <> 0u && crc <> e.Crc32 then
                raise (fail $"the record '{name}' is damaged: its CRC-32 is 0x%08X{crc} but the archive records 0x%08X{e.Crc32}")
            Some bytes
    match record "byteorder" 16L with
    | Some b when Encoding.ASCII.GetString(b).Trim() <> "little" ->
        raise (fail $"the tensors are stored {Encoding.ASCII.GetString(b).Trim()}-endian; only little-endian files are read")
    | _ -> ()
    let pkl =
        match record "data.pkl" (int64 MaxPickleBytes) with
        | Some b -> b
        | None -> raise (fail $"the zip archive lacks {prefix}data.pkl: it is not a torch.save file")
    let found = entries fail (unpickle fail pkl)
    let storages = Dictionary<string, Tensor>()
    let tensors = ResizeArray<string * Tensor>()
    try
        try
            for e in found do
                let dtype, size =
                    match storageTypes.TryGetValue e.Storage.Type with
                    | true, t -> t
                    | _ -> raise (fail $"tensor '{e.Name}' is stored as {e.Storage.Type}; only float32 (FloatStorage) and float64 (DoubleStorage) are read")
                let storage =
                    match storages.TryGetValue e.Storage.Key with
                    | true, s -> s
                    | _ ->
                        if e.Storage.Numel < 0L || e.Storage.Numel > int64 Array.MaxLength / int64 size then
                            raise (fail $"storage '{e.Storage.Key}' declares {e.Storage.Numel} elements")
                        let expected = e.Storage.Numel * int64 size
                        let bytes =
                            match record $"data/{e.Storage.Key}" expected with
                            | Some b -> b
                            | None -> raise (fail $"the zip archive lacks {prefix}data/{e.Storage.Key}, the data of tensor '{e.Name}'")
                        if int64 bytes.Length <> expected then
                            raise (fail $"the data of storage '{e.Storage.Key}' is {bytes.Length} bytes but {e.Storage.Numel} elements of {size} bytes were declared")
                        if not BitConverter.IsLittleEndian then
                            for i in 0 .. size .. bytes.Length - 1 do Array.Reverse(bytes, i, size)
                        let shape = ReadOnlySpan [| e.Storage.Numel |]
                        let s =
                            if dtype = torch.ScalarType.Float32 then torch.tensor(MemoryMarshal.Cast<byte, float32>(ReadOnlySpan bytes).ToArray(), shape)
                            else torch.tensor(MemoryMarshal.Cast<byte, float>(ReadOnlySpan bytes).ToArray(), shape)
                        storages.[e.Storage.Key] <- s
                        s
                if tensors.Exists(fun (n, _) -> n = e.Name) then raise (fail $"the name '{e.Name}' appears more than once")
                tensors.Add((e.Name, tensorOf fail e dtype storage))
            List.ofSeq tensors
        with _ ->
            for _, t in tensors do t.Dispose()
            reraise ()
    finally
        for s in storages.Values do s.Dispose()

/// Reads the state_dict file at `path`, as `read` does. FileNotFoundException when it is missing.
let load (path: string) : (string * Tensor) list =
    if isNull path then nullArg "path"
    if not (File.Exists path) then raise (FileNotFoundException($"PyTorch state_dict file not found: {path}", path))
    use s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 65536)
    read s path

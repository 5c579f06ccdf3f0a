module Research.Core.Tests.TensorBoardLogTests

open System
open System.IO
open Expecto
open TorchSharp
open Research.Core

/// CRC-32C (Castagnoli), the checksum of TensorBoard's record framing, bit by bit from its definition.
let private crc32c (data: byte[]) (offset: int) (count: int) =
    let mutable crc = 0xFFFFFFFFu
    for i in offset .. offset + count - 1 do
        crc <- crc ^^^ uint32 data.[i]
        for _ in 1 .. 8 do
            crc <- if crc &&& 1u <> 0u then (crc >>> 1) ^^^ 0x82F63B78u else crc >>> 1
    ~~~crc

let private masked (crc: uint32) = ((crc >>> 15) ||| (crc <<< 17)) + 0xa282ead8u

/// The records of an event file: u64 length, u32 masked CRC of the length, the data, u32 masked CRC of the
/// data; every checksum is checked and the file must end exactly after the last record.
let private records (bytes: byte[]) =
    let mutable at = 0
    [ while at < bytes.Length do
        Expect.isGreaterThanOrEqual (bytes.Length - at) 12 "a whole record header"
        let length = int (BitConverter.ToUInt64(bytes, at))
        Expect.equal (BitConverter.ToUInt32(bytes, at + 8)) (masked (crc32c bytes at 8)) "the length's checksum"
        Expect.isGreaterThanOrEqual (bytes.Length - at - 12) (length + 4) "the record's data and checksum are all there"
        Expect.equal (BitConverter.ToUInt32(bytes, at + 12 + length)) (masked (crc32c bytes (at + 12) length)) "the data's checksum"
        yield bytes.[at + 12 .. at + 11 + length]
        at <- at + 16 + length ]

/// Protocol-buffer fields (number, wire type, payload bytes or value) of one message.
let rec private fields (m: byte[]) =
    let mutable at = 0
    let varint () =
        let mutable v = 0UL
        let mutable shift = 0
        let mutable go = true
        while go do
            let b = m.[at]
            at <- at + 1
            v <- v ||| (uint64 (b &&& 0x7Fuy) <<< shift)
            shift <- shift + 7
            go <- b &&& 0x80uy <> 0uy
        v
    [ while at < m.Length do
        let key = varint ()
        let number, wire = int (key >>> 3), int (key &&& 7UL)
        match wire with
        | 0 -> yield number, wire, BitConverter.GetBytes(varint ())
        | 1 -> yield number, wire, m.[at .. at + 7]; at <- at + 8
        | 2 ->
            let n = int (varint ())
            yield number, wire, m.[at .. at + n - 1]
            at <- at + n
        | 5 -> yield number, wire, m.[at .. at + 3]; at <- at + 4
        | w -> failtest $"unexpected wire type {w}" ]

/// (tag, step, value) of every scalar in an event file (Event: 2 step, 5 summary; Summary: 1 value;
/// Value: 1 tag, 2 simple_value), and the file_version (Event field 3) of its first record.
let readScalars (path: string) =
    let events = records (File.ReadAllBytes path) |> List.map fields
    let version =
        events.Head |> List.tryPick (fun (n, _, b) -> if n = 3 then Some(Text.Encoding.UTF8.GetString b) else None)
    let scalars =
        [ for e in events do
            let step = e |> List.tryPick (fun (n, _, b) -> if n = 2 then Some(int (BitConverter.ToUInt64 b)) else None) |> Option.defaultValue 0
            for n, _, summary in e do
                if n = 5 then
                    for k, _, value in fields summary do
                        if k = 1 then
                            let v = fields value
                            let tag = v |> List.pick (fun (i, _, b) -> if i = 1 then Some(Text.Encoding.UTF8.GetString b) else None)
                            let x = v |> List.pick (fun (i, _, b) -> if i = 2 then Some(BitConverter.ToSingle(b, 0)) else None)
                            yield tag, step, x ]
    version, scalars

let private data seed rows =
    use g = new torch.Generator(uint64 seed)
    use p = torch.rand([| int64 rows; 16L |], generator = g) * 0.6
    torch.bernoulli(p, g)

let private eventFiles folder = Directory.GetFiles(folder, "events.out.tfevents.*") |> Array.sort

let tests =
    testList "TensorBoardLog" [
        test "a VAE's Fit writes each epoch's losses and ELBO terms, which read back through the record framing" {
            let folder = Path.Combine(Path.GetTempPath(), $"research-tb-{Guid.NewGuid():N}")
            try
                use x = data 1 200
                use v = data 2 50
                use vae = new Vae.VariationalAutoencoder({ Vae.defaults 16 2 with HiddenSizes = [ 8 ]; Device = "cpu" })
                let history =
                    vae.Fit(x, { Training.defaults with Epochs = 3; BatchSize = 50; Validation = Some v; TensorBoard = Some folder })
                let file = Expect.wantSome (Array.tryExactlyOne (eventFiles folder)) "one event file"
                let version, scalars = readScalars file
                Expect.equal version (Some "brain.Event:2") "the file starts with TensorBoard's version record"
                let at tag step = scalars |> List.filter (fun (t, s, _) -> t = tag && s = step) |> List.map (fun (_, _, x) -> float x)
                for r in history do
                    Expect.equal (at "loss/train" r.Epoch) [ float (float32 r.TrainLoss) ] $"epoch {r.Epoch}: train loss"
                    Expect.equal (at "loss/validation" r.Epoch) [ float (float32 r.ValidationLoss.Value) ] $"epoch {r.Epoch}: validation loss"
                    // The validation loss is −ELBO with the model's seed and one sample, as the terms are.
                    let sum = (at "kl/validation" r.Epoch).Head + (at "reconstruction/validation" r.Epoch).Head
                    Expect.floatClose Accuracy.single sum r.ValidationLoss.Value $"epoch {r.Epoch}: KL + reconstruction = −ELBO"
                    Expect.isGreaterThan (at "kl/train" r.Epoch).Head 0.0 "the KL term is positive"
                    Expect.hasLength (at "reconstruction/train" r.Epoch) 1 "the training reconstruction term"
                Expect.hasLength scalars (6 * history.Length) "six scalars an epoch and nothing else"
                use ae = new Autoencoder.Autoencoder({ InputSize = 16; LatentSize = 2; HiddenSizes = []; Linear = true; Activation = Mlp.ReLU; Init = Mlp.Uniform; Convolutional = None; Seed = 0; Device = "cpu" })
                ae.Fit(x, { Training.defaults with Epochs = 2; BatchSize = 50; TensorBoard = Some folder }) |> ignore
                let files = eventFiles folder
                Expect.hasLength files 2 "a second Fit adds its own file"
                let second = files |> Array.find (fun f -> f <> file)
                let _, aeScalars = readScalars second
                Expect.equal (aeScalars |> List.map (fun (t, s, _) -> t, s)) [ "loss/train", 1; "loss/train", 2 ] "the autoencoder logs its loss only"
            finally
                if Directory.Exists folder then Directory.Delete(folder, true)
        }

        test "a log folder that is a file is an ArgumentException before any weight changes" {
            let file = Path.GetTempFileName()
            try
                use x = data 1 100
                use vae = new Vae.VariationalAutoencoder({ Vae.defaults 16 2 with HiddenSizes = [ 8 ]; Device = "cpu" })
                let before = vae.Networks.NamedParameters |> List.map (fun (_, p) -> p.clone ())
                let refused =
                    try vae.Fit(x, { Training.defaults with TensorBoard = Some file }) |> ignore; None
                    with :? ArgumentException as e -> Some e.Message
                Expect.stringContains (Expect.wantSome refused "refused") "is an existing file" "the message names the problem"
                for b, (_, p) in List.zip before vae.Networks.NamedParameters do
                    Expect.isTrue (b.Equals p) "unchanged"
            finally File.Delete file
        }
    ]

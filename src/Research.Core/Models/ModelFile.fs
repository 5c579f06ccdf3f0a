/// Model files: a model's options as text and its parameters as tensors, in a Checkpoint.
module internal Research.Core.ModelFile

open System
open System.Globalization
open System.IO
open TorchSharp

let private inv = CultureInfo.InvariantCulture

/// The text form of an integer option value, culture-independent (read back by `int`).
let ofInt (v: int) = v.ToString inv
/// The text form of a float option value, culture-independent and round-trip exact (read back by `float`).
let ofFloat (v: float) = v.ToString("R", inv)
/// The text form of a list of integers, comma-separated with no spaces (read back by `ints`).
let ofInts (vs: int list) = String.Join(",", vs |> List.map ofInt)

let private get (cp: Checkpoint.Checkpoint) key =
    match cp.Options |> List.tryFind (fst >> (=) key) with
    | Some(_, v) -> v
    | None -> raise (InvalidDataException($"The {cp.Kind} file lacks the option '{key}'."))

let private bad (cp: Checkpoint.Checkpoint) key (v: string) =
    InvalidDataException($"The {cp.Kind} file's option '{key}' has the invalid value '{v}'.")

/// Reads an integer option; InvalidDataException when it is missing or malformed.
let int (cp: Checkpoint.Checkpoint) key =
    let v = get cp key
    match Int32.TryParse(v, NumberStyles.Integer, inv) with
    | true, i -> i
    | _ -> raise (bad cp key v)

/// Reads a float option.
let float (cp: Checkpoint.Checkpoint) key =
    let v = get cp key
    match Double.TryParse(v, NumberStyles.Float, inv) with
    | true, f -> f
    | _ -> raise (bad cp key v)

/// Reads a comma-separated list of integers (possibly empty).
let ints (cp: Checkpoint.Checkpoint) key =
    let v = get cp key
    if v = "" then []
    else
        v.Split ','
        |> Array.map (fun s -> match Int32.TryParse(s, NumberStyles.Integer, inv) with | true, i -> i | _ -> raise (bad cp key v))
        |> List.ofArray

/// Reads one of a fixed set of named values.
let choice (cp: Checkpoint.Checkpoint) key (choices: (string * 'T) list) : 'T =
    let v = get cp key
    match choices |> List.tryFind (fst >> (=) v) with
    | Some(_, c) -> c
    | None -> raise (bad cp key v)

let private activations = [ "relu", Mlp.ReLU; "tanh", Mlp.Tanh ]

/// The text form of an activation (read back by `activationOr`).
let ofActivation (a: Mlp.Activation) = activations |> List.find (snd >> (=) a) |> fst

/// The text form of an initialisation: "uniform" or the Normal standard deviation (read back by `initOr`).
let ofInit (init: Mlp.Init) = match init with Mlp.Uniform -> "uniform" | Mlp.Normal s -> ofFloat s

/// Reads the "Activation" option, or `fallback` when the file predates it.
let activationOr (cp: Checkpoint.Checkpoint) (fallback: Mlp.Activation) =
    if cp.Options |> List.exists (fst >> (=) "Activation") then choice cp "Activation" activations else fallback

/// Reads the "InitStd" option ("uniform" or a standard deviation), or `fallback` when the file predates it.
let initOr (cp: Checkpoint.Checkpoint) (fallback: Mlp.Init) =
    match cp.Options |> List.tryFind (fst >> (=) "InitStd") with
    | None -> fallback
    | Some(_, "uniform") -> Mlp.Uniform
    | Some _ -> Mlp.Normal(float cp "InitStd")

/// The text form of a convolutional image shape, "C,H,W", or "" for none (read back by `imageShape`).
let ofImageShape (shape: ConvNet.ImageShape option) =
    match shape with
    | Some s -> ofInts [ s.Channels; s.Height; s.Width ]
    | None -> ""

/// Reads the "Convolutional" option ("C,H,W" or empty; absent in files that predate it).
let imageShape (cp: Checkpoint.Checkpoint) : ConvNet.ImageShape option =
    if cp.Options |> List.exists (fst >> (=) "Convolutional") then
        match ints cp "Convolutional" with
        | [] -> None
        | [ c; h; w ] -> Some { Channels = c; Height = h; Width = w }
        | _ -> raise (bad cp "Convolutional" (String.Join(",", ints cp "Convolutional")))
    else None

/// Writes a model's options and parameters to `path` atomically.
let save (path: string) (kind: string) (options: (string * string) list) (net: Networks.EncoderDecoder) =
    if String.IsNullOrWhiteSpace path then raise (ArgumentException("The path is empty.", "path"))
    net.ThrowIfDisposed()
    Checkpoint.save path { Kind = kind; Options = options; Tensors = net.NamedParameters }

/// Reads a model file of `kind` for `device`, runs `check` on it (which may refuse it with an exception before
/// anything is built), builds the model from its options with `create`, and copies the parameters in. A
/// damaged file raises InvalidDataException and builds nothing.
let loadChecked (path: string) (device: string) (kind: string) (check: Checkpoint.Checkpoint -> unit)
                (create: Checkpoint.Checkpoint -> 'Model) (net: 'Model -> Networks.EncoderDecoder) : 'Model =
    if String.IsNullOrWhiteSpace path then raise (ArgumentException("The path is empty.", "path"))
    Device.parse device |> ignore // an unknown device is the caller's error, reported before reading
    let cp = Checkpoint.load path kind torch.CPU
    try
        check cp
        // Options are checked like a user's; in a file, a bad size means a damaged file.
        let model =
            try create cp
            with :? ArgumentException as e -> raise (InvalidDataException($"The {kind} file's options are invalid: {e.Message}", e))
        try
            (net model).LoadParameters cp.Tensors
            model
        with _ ->
            (box model :?> IDisposable).Dispose()
            reraise ()
    finally
        for _, t in cp.Tensors do t.Dispose()

/// loadChecked with no check beyond the file's own.
let load (path: string) (device: string) (kind: string) (create: Checkpoint.Checkpoint -> 'Model)
         (net: 'Model -> Networks.EncoderDecoder) : 'Model =
    loadChecked path device kind ignore create net

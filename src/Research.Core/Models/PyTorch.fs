/// An encoder–decoder's parameters under the names a plain PyTorch module gives them, written to and read
/// from the state_dict file torch.save writes (StateDictFile).
///
/// A model's networks are `nn.Sequential` stacks, so the names are those of a PyTorch module with
/// `self.encoder = nn.Sequential(...)` and `self.decoder = nn.Sequential(...)`: `encoder.<i>.weight` and
/// `encoder.<i>.bias`, then `decoder.<i>.…`, where i is the layer's index in its Sequential. Activations have
/// no parameters but take an index, so with one after every hidden layer the linear layers sit at 0, 2, 4, …
/// (at 0, 1, 2, … in the linear autoencoder). A weight is [outputs, inputs], as nn.Linear's.
/// docs/pytorch.md shows the PyTorch modules of the built-in models.
module Research.Core.PyTorch

open System
open System.IO
open TorchSharp

type Tensor = torch.Tensor

/// The parameters of `net` under PyTorch's names: `prefix`, the child's index in the Sequential, then the
/// child's own parameter name (for nn.Linear: weight, bias). Buffers are not included.
/// Research code's own modules (anything but a Sequential) keep their own parameter names, which are those of
/// the PyTorch module with the same attributes.
let sequentialParameters (prefix: string) (net: Networks.Module) : (string * Tensor) list =
    match net with
    | :? Modules.Sequential ->
        [ for i, struct (_, child) in Seq.indexed (net.named_children ()) do
            for struct (name, p) in child.named_parameters () -> $"{prefix}.{i}.{name}", p :> Tensor ]
    | _ -> [ for struct (name, p) in net.named_parameters () -> $"{prefix}.{name}", p :> Tensor ]

/// The parameters of an encoder–decoder under PyTorch's names, encoder first, in layer order.
let parameters (net: Networks.EncoderDecoder) : (string * Tensor) list =
    sequentialParameters "encoder" net.Encoder @ sequentialParameters "decoder" net.Decoder

/// The shape as PyTorch prints a size: [4, 6].
let private shape (t: Tensor) = "[" + String.Join(", ", t.shape) + "]"

/// Writes the parameters of `net` to `path` as a PyTorch state_dict (float32, the parameters only: no
/// buffers, no metadata), atomically.
let export (path: string) (net: Networks.EncoderDecoder) : unit =
    if String.IsNullOrWhiteSpace path then raise (ArgumentException("The path is empty.", "path"))
    net.ThrowIfDisposed()
    StateDictFile.save path (parameters net)

/// What keeps `tensors` from being `net`'s parameters: each missing, extra or wrongly shaped name, with
/// its shape(s); empty when the names and shapes match.
let mismatches (modelName: string) (net: Networks.EncoderDecoder) (tensors: (string * Tensor) list) : string list =
    let mine = parameters net
    let theirs = dict tensors
    let expected = dict mine
    [ for name, p in mine do
        match theirs.TryGetValue name with
        | true, t when t.shape = p.shape -> ()
        | true, t -> $"parameter '{name}' has shape {shape t} in the file but {shape p} in the {modelName}"
        | _ -> $"the file lacks the parameter '{name}' (shape {shape p})"
      for name, t in tensors do
        if not (expected.ContainsKey name) then $"the file holds '{name}' (shape {shape t}), which the {modelName} does not have" ]

/// Copies a state_dict read from `source` into `net`'s parameters (float64 converted to the parameters'
/// dtype) after checking names and shapes; a mismatch is an InvalidDataException naming every one, and
/// then no parameter changes.
let copyInto (source: string) (modelName: string) (net: Networks.EncoderDecoder) (tensors: (string * Tensor) list) : unit =
    match mismatches modelName net tensors with
    | [] ->
        let byName = dict tensors
        use _ = torch.no_grad ()
        for name, p in parameters net do p.copy_(byName.[name]) |> ignore
    | problems ->
        let found = String.Join("; ", problems)
        let expected = String.Join(", ", parameters net |> List.map (fun (n, p) -> $"{n} {shape p}"))
        raise (InvalidDataException(
            $"PyTorch state_dict {source} does not fit this {modelName}: {found}. Its parameters are: {expected} (see docs/pytorch.md)."))

/// A model made by `create` (which checks its options first) whose parameters are read from the
/// state_dict file at `path`. A file that is not a state_dict, is damaged, or whose names or shapes differ
/// from the model's is an InvalidDataException, and the model is disposed: nothing is returned.
let import (path: string) (modelName: string) (create: unit -> 'Model) (net: 'Model -> Networks.EncoderDecoder) : 'Model =
    if String.IsNullOrWhiteSpace path then raise (ArgumentException("The path is empty.", "path"))
    let model = create ()
    try
        let tensors = StateDictFile.load path
        try copyInto path modelName (net model) tensors
        finally for _, t in tensors do t.Dispose()
        model
    with _ ->
        (box model :?> IDisposable).Dispose()
        reraise ()

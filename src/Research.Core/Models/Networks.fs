/// The state every encoder–decoder model shares: its two networks, its device, its lifetime and its
/// one-Fit-at-a-time guard. Models hold one of these instead of repeating the bookkeeping.
module Research.Core.Networks

open System
open System.Threading
open TorchSharp

type Tensor = torch.Tensor

type Module = torch.nn.Module<Tensor, Tensor>

/// The named parameters of an encoder and a decoder, as checkpoints name them ("encoder.<name>", "decoder.<name>").
let namedParameters (encoder: Module) (decoder: Module) : (string * Tensor) list =
    [ for struct (n, p) in encoder.named_parameters () -> "encoder." + n, p :> Tensor
      for struct (n, p) in decoder.named_parameters () -> "decoder." + n, p :> Tensor ]

/// InvalidDataException unless `tensors` (from a file) has exactly the names and shapes of `parameters`.
let checkTensors (modelName: string) (parameters: (string * Tensor) list) (tensors: (string * Tensor) list) =
    let byName = dict tensors
    for name, p in parameters do
        match byName.TryGetValue name with
        | true, t when t.shape = p.shape -> ()
        | true, t -> raise (IO.InvalidDataException($"Tensor '{name}' has shape %A{t.shape} in the file but %A{p.shape} in the model."))
        | _ -> raise (IO.InvalidDataException($"The file lacks the tensor '{name}' of this {modelName}."))
    let mine = set (List.map fst parameters)
    match tensors |> List.tryFind (fun (n, _) -> not (mine.Contains n)) with
    | Some(extra, _) -> raise (IO.InvalidDataException($"The file holds the tensor '{extra}', which this {modelName} does not have."))
    | None -> ()

/// An encoder and a decoder on one device: the library's own networks, initialised from a seed
/// (`init` Some), or research code's own modules, which keep the weights they were built with (None).
/// The modules are in evaluation mode except during Fit (dropout, batch normalisation).
type EncoderDecoder(modelName: string, device: torch.Device, encoder: Module, decoder: Module, init: Mlp.Init option, seed: int) =
    do
        match init with
        | Some init ->
            use g = new torch.Generator(uint64 seed)
            Mlp.initialise g init [ encoder; decoder ]
        | None -> ()
        encoder.``to``(device) |> ignore
        decoder.``to``(device) |> ignore
        encoder.eval ()
        decoder.eval ()
    let mutable disposed = false
    let busy = ref 0

    /// The torch device holding the parameters.
    member _.Device = device
    /// The encoder network.
    member _.Encoder = encoder
    /// The decoder network.
    member _.Decoder = decoder
    /// True once disposed.
    member _.IsDisposed = disposed

    /// Throws ObjectDisposedException after Dispose.
    member _.ThrowIfDisposed() = if disposed then raise (ObjectDisposedException(modelName))

    /// The tensor on this model's device (an alias when it is already there; dispose either way).
    member _.ToDevice(x: Tensor) = if x.device = device then x.alias () else x.``to``(device)

    /// Every trainable parameter, encoder first.
    member _.Parameters : Modules.Parameter list = [ yield! encoder.parameters (); yield! decoder.parameters () ]

    /// The named parameter tensors, in a fixed order (for checkpoints).
    member _.NamedParameters : (string * Tensor) list = namedParameters encoder decoder

    /// Copies `tensors` (matched by name and shape, all of them required) into the parameters; checks them all
    /// first (checkTensors), so a mismatch changes nothing.
    member this.LoadParameters(tensors: (string * Tensor) list) =
        let mine = this.NamedParameters
        checkTensors modelName mine tensors
        let byName = dict tensors
        use _ = torch.no_grad ()
        for name, p in mine do p.copy_(byName.[name]) |> ignore

    /// Trains with `lossAndGradients` (as ITrainable.LossAndGradients; Training.byAutograd makes it from a
    /// differentiable loss) and `evaluate` on data already validated by the model; `terms` gives the model's
    /// own per-example means for the TensorBoard log (empty when it has none). Refuses a second concurrent
    /// Fit on the same model.
    member this.Fit(data: Tensor, training: Training.TrainingConfig, lossAndGradients, evaluate,
                    terms: Tensor -> (string * float) list, architecture: (string * string) list) : Training.EpochReport list =
        Training.validate training
        training.TensorBoard |> Option.iter TensorBoardLog.validateFolder
        if training.DynamicBinarization then
            try Validate.unitMatrix "data" (int data.shape.[1]) data
            with :? ArgumentException as e ->
                raise (ArgumentException(e.Message + " DynamicBinarization draws each pixel as Bernoulli(value), so the data must lie in [0, 1].", "data", e))
        if Interlocked.CompareExchange(busy, 1, 0) <> 0 then
            raise (InvalidOperationException($"Fit is already running on this {modelName}; train one model per thread."))
        try
            use xd = this.ToDevice data
            let vd = training.Validation |> Option.map this.ToDevice
            try
                let parameters = this.Parameters
                let mode training =
                    for m in [ encoder; decoder ] do if training then m.train () else m.eval ()
                let trainable =
                    { new Training.ITrainable with
                        member _.Parameters = parameters
                        member _.LossAndGradients generator batch = lossAndGradients generator batch
                        member _.Evaluate v =
                            mode false
                            try evaluate v finally mode true }
                mode true
                let progress =
                    match training.TensorBoard with
                    | None -> training.Progress
                    | Some folder ->
                        let log = TensorBoardLog.progress folder xd vd terms
                        fun report -> log report; training.Progress report
                let identity () = Training.runIdentity { training with Validation = vd } xd @ [ for k, v in architecture -> "model." + k, v ]
                try Training.fitValidated trainable xd { training with Validation = vd; Progress = progress } identity
                finally mode false
            finally
                vd |> Option.iter (fun t -> t.Dispose())
        finally
            busy.Value <- 0

    interface IDisposable with
        member _.Dispose() =
            if not disposed then
                disposed <- true
                encoder.Dispose()
                decoder.Dispose()
                Native.releaseFreedMemory ()

/// Deterministic autoencoders: an MLP encoder/decoder (ReLU, sigmoid output) or a fully linear one.
module Research.Core.Autoencoder

open System
open System.Threading
open TorchSharp

type Tensor = torch.Tensor

/// The architecture of an autoencoder.
type AutoencoderConfig =
    { InputSize: int
      LatentSize: int
      /// Encoder hidden sizes, input side first; the decoder mirrors them.
      HiddenSizes: int list
      /// No nonlinearity at all (and no output sigmoid): the model whose optimum spans the PCA subspace.
      Linear: bool
      Seed: int
      Device: string }

/// Checks the sizes of a configuration.
let validateConfig (c: AutoencoderConfig) =
    Validate.positive "InputSize" c.InputSize
    Validate.positive "LatentSize" c.LatentSize
    Validate.sizes "HiddenSizes" c.HiddenSizes
    if c.LatentSize > c.InputSize then
        raise (ArgumentOutOfRangeException("LatentSize", c.LatentSize,
                $"LatentSize ({c.LatentSize}) must not exceed InputSize ({c.InputSize}): the code would not compress."))

/// The checkpoint kind of an autoencoder file.
[<Literal>]
let Kind = "autoencoder"

/// An autoencoder x ↦ g(f(x)) trained on mean squared error per element.
type Autoencoder(config: AutoencoderConfig) =
    do validateConfig config
    let device = Device.parse config.Device
    let activation = if config.Linear then None else Some Mlp.ReLU
    let encoder = Mlp.create (config.InputSize :: config.HiddenSizes @ [ config.LatentSize ]) activation
    let decoder = Mlp.create (config.LatentSize :: List.rev config.HiddenSizes @ [ config.InputSize ]) activation
    do
        use g = new torch.Generator(uint64 config.Seed)
        Mlp.initialise g Mlp.Uniform [ encoder; decoder ]
        encoder.``to``(device) |> ignore
        decoder.``to``(device) |> ignore
    let mutable disposed = false
    let busy = ref 0
    let checkAlive () = if disposed then raise (ObjectDisposedException(nameof Autoencoder))
    let toDevice (x: Tensor) = if x.device = device then x.alias() else x.``to``(device)
    let decode (z: Tensor) = let y = decoder.forward z in if config.Linear then y else torch.sigmoid y
    let perExampleError (x: Tensor) =
        use r = decode (encoder.forward x)
        torch.nn.functional.mse_loss(r, x, reduction = torch.nn.Reduction.None).mean([| 1L |])

    /// The architecture this model was built with.
    member _.Config = config
    /// The torch device holding the parameters.
    member _.Device = device
    /// The encoder network f (for advanced use; do not train it from two threads).
    member _.Encoder = encoder
    /// The decoder network g, before the output sigmoid.
    member _.Decoder = decoder

    /// Checks a data matrix against this model.
    member _.CheckData(name: string, data: Tensor) = checkAlive (); Validate.matrix name config.InputSize data

    /// f(x): codes [n, LatentSize].
    member this.Encode(x: Tensor) : Tensor =
        this.CheckData("data", x)
        use _ = torch.no_grad ()
        use xd = toDevice x
        encoder.forward xd

    /// g(z): reconstructions [n, InputSize].
    member _.Decode(z: Tensor) : Tensor =
        checkAlive ()
        Validate.matrix "codes" config.LatentSize z
        use _ = torch.no_grad ()
        use zd = toDevice z
        decode zd

    /// g(f(x)).
    member this.Reconstruct(x: Tensor) : Tensor =
        this.CheckData("data", x)
        use _ = torch.no_grad ()
        use xd = toDevice x
        use z = encoder.forward xd
        decode z

    /// Mean squared error per element of g(f(x)) against x.
    member this.ReconstructionError(x: Tensor) : float =
        this.CheckData("data", x)
        use xd = toDevice x
        Training.evaluateInChunks 4096L perExampleError xd

    /// Trains on the rows of `data`; refuses a second concurrent Fit on the same model.
    member this.Fit(data: Tensor, training: Training.TrainingConfig) : Training.EpochReport list =
        this.CheckData("data", data)
        training.Validation |> Option.iter (fun v -> this.CheckData("validation", v))
        Training.validate training
        if Interlocked.CompareExchange(busy, 1, 0) <> 0 then
            raise (InvalidOperationException("Fit is already running on this model; train one model per thread."))
        try
            use xd = toDevice data
            let vd = training.Validation |> Option.map toDevice
            try
                let trainable =
                    { new Training.ITrainable with
                        member _.Parameters = [ yield! encoder.parameters (); yield! decoder.parameters () ]
                        member _.Loss _ batch = perExampleError(batch).mean()
                        member _.Evaluate v = Training.evaluateInChunks 4096L perExampleError v }
                Training.fit trainable xd { training with Validation = vd }
            finally
                vd |> Option.iter (fun t -> t.Dispose())
        finally
            busy.Value <- 0

    /// The named parameter tensors, in a fixed order (for checkpoints).
    member _.NamedParameters : (string * Tensor) list =
        [ for struct (n, p) in encoder.named_parameters () -> "encoder." + n, p :> Tensor
          for struct (n, p) in decoder.named_parameters () -> "decoder." + n, p :> Tensor ]

    interface IDisposable with
        member _.Dispose() =
            if not disposed then
                disposed <- true
                encoder.Dispose()
                decoder.Dispose()

/// Deterministic autoencoders: an MLP encoder/decoder (ReLU or tanh, sigmoid output, so data in [0, 1])
/// or a fully linear one (any real data).
module Research.Core.Autoencoder

open System
open TorchSharp

type Tensor = torch.Tensor

/// The architecture of an autoencoder.
type AutoencoderConfig =
    { /// Features per example (784 for MNIST).
      InputSize: int
      /// The size of the code; at most InputSize.
      LatentSize: int
      /// Encoder hidden sizes, input side first; the decoder mirrors them.
      HiddenSizes: int list
      /// No nonlinearity at all (and no output sigmoid): the model whose optimum spans the PCA subspace.
      Linear: bool
      /// The nonlinearity between hidden layers (unused when Linear).
      Activation: Mlp.Activation
      /// How the weights are initialised.
      Init: Mlp.Init
      /// Some shape: a convolutional encoder and a transposed-convolutional decoder for images of that shape
      /// (ConvNet; HiddenSizes are then the channel counts); None: MLPs.
      Convolutional: ConvNet.ImageShape option
      /// Seeds the initial weights.
      Seed: int
      /// "auto", "cpu", "cuda" or "cuda:N" (see Device.parse).
      Device: string }

/// ReLU hidden layers, a sigmoid output, PyTorch's initialisation, seed 0, device "auto".
let defaults inputSize latentSize =
    { InputSize = inputSize; LatentSize = latentSize; HiddenSizes = []; Linear = false; Activation = Mlp.ReLU
      Init = Mlp.Uniform; Convolutional = None; Seed = 0; Device = "auto" }

/// Checks the sizes and settings of a configuration.
let validateConfig (c: AutoencoderConfig) =
    Validate.architecture c.InputSize c.LatentSize (if c.Convolutional.IsSome then [] else c.HiddenSizes)
    match c.Convolutional with
    | Some shape ->
        if c.Linear then
            raise (ArgumentException("Linear = true has no nonlinearity, which a convolutional network needs; leave Convolutional unset for the linear autoencoder.", "Linear"))
        ConvNet.validate c.InputSize shape c.HiddenSizes
    | None -> ()
    Mlp.validateInit c.Init

/// The checkpoint kind of an autoencoder file.
[<Literal>]
let Kind = "autoencoder"

let private networks (c: AutoencoderConfig) =
    validateConfig c
    let activation = if c.Linear then None else Some c.Activation
    let device = Device.parse c.Device
    let encoder, decoder =
        match c.Convolutional with
        | Some shape ->
            ConvNet.encoder shape c.HiddenSizes c.Activation c.LatentSize :> Networks.Module,
            ConvNet.decoder shape c.HiddenSizes c.Activation c.LatentSize shape.Channels :> Networks.Module
        | None ->
            Mlp.create (c.InputSize :: c.HiddenSizes @ [ c.LatentSize ]) activation :> Networks.Module,
            Mlp.create (c.LatentSize :: List.rev c.HiddenSizes @ [ c.InputSize ]) activation :> Networks.Module
    new Networks.EncoderDecoder("Autoencoder", device, encoder, decoder, Some c.Init, c.Seed)

/// The options a model file (and a run checkpoint) records for an autoencoder.
let private optionsOf (c: AutoencoderConfig) =
    [ "InputSize", ModelFile.ofInt c.InputSize; "LatentSize", ModelFile.ofInt c.LatentSize
      "HiddenSizes", ModelFile.ofInts c.HiddenSizes; "Linear", (if c.Linear then "true" else "false")
      "Activation", ModelFile.ofActivation c.Activation; "InitStd", ModelFile.ofInit c.Init
      "Convolutional", ModelFile.ofImageShape c.Convolutional; "Seed", ModelFile.ofInt c.Seed ]

/// Rows per chunk when scoring without gradients.
let private evalRows = 4096L

/// An autoencoder x ↦ g(f(x)) trained on mean squared error per element.
type Autoencoder(config: AutoencoderConfig) =
    let net = networks config
    let decode (z: Tensor) =
        let y = net.Decoder.forward z
        if config.Linear then y
        else
            use _ = y
            torch.sigmoid y
    let perExampleError (x: Tensor) =
        use r = decode (net.Encoder.forward x)
        torch.nn.functional.mse_loss(r, x, reduction = torch.nn.Reduction.None).mean([| 1L |])

    /// The architecture this model was built with.
    member _.Config = config
    /// The options a model file (and a run checkpoint) records for this model.
    member _.SavedOptions : (string * string) list = optionsOf config
    /// The networks, device and lifetime of this model (for advanced use: the TorchSharp modules).
    member _.Networks = net

    /// Checks a data matrix against this model: its width, finite values and, for the nonlinear model, whose
    /// output is a sigmoid, values in [0, 1] (it could not reconstruct others, and would train silently worse).
    member _.CheckData(name: string, data: Tensor) =
        net.ThrowIfDisposed()
        if config.Linear then Validate.matrix name config.InputSize data
        else
            try Validate.unitMatrix name config.InputSize data
            with :? ArgumentException as e when e.Message.Contains "[0, 1]" ->
                raise (ArgumentException(
                    e.Message + " The nonlinear autoencoder's output is a sigmoid, so it reconstructs values in [0, 1] only: "
                    + "scale the data into [0, 1], or use Linear = true for real-valued data.", name, e))

    /// f(x): codes [n, LatentSize].
    member this.Encode(x: Tensor) : Tensor =
        this.CheckData("data", x)
        use _ = torch.no_grad ()
        use xd = net.ToDevice x
        net.Encoder.forward xd

    /// g(z): reconstructions [n, InputSize].
    member _.Decode(z: Tensor) : Tensor =
        net.ThrowIfDisposed()
        Validate.matrix "codes" config.LatentSize z
        use _ = torch.no_grad ()
        use zd = net.ToDevice z
        decode zd

    /// g(f(x)).
    member this.Reconstruct(x: Tensor) : Tensor =
        this.CheckData("data", x)
        use _ = torch.no_grad ()
        use xd = net.ToDevice x
        use z = net.Encoder.forward xd
        decode z

    /// Mean squared error per element of g(f(x)) against x.
    member this.ReconstructionError(x: Tensor) : float =
        this.CheckData("data", x)
        use xd = net.ToDevice x
        Training.evaluateInChunks evalRows perExampleError xd

    /// Trains on the rows of `data` (loss: MSE per element); refuses a second concurrent Fit.
    member this.Fit(data: Tensor, training: Training.TrainingConfig) : Training.EpochReport list =
        this.CheckData("data", data)
        training.Validation |> Option.iter (fun v -> this.CheckData("validation", v))
        net.Fit(data, training, Training.byAutograd (fun _ batch -> perExampleError(batch).mean()),
                Training.evaluateInChunks evalRows perExampleError, (fun _ -> []), optionsOf config)

    interface IDisposable with
        member _.Dispose() = (net :> IDisposable).Dispose()

/// Writes `model` to `path` atomically (a temp file, then a rename).
let save (path: string) (model: Autoencoder) = ModelFile.save path Kind model.SavedOptions model.Networks

/// Reads an autoencoder written by `save` onto `device`; InvalidDataException for a damaged or foreign file.
let load (path: string) (device: string) : Autoencoder =
    ModelFile.load path device Kind
        (fun cp ->
            new Autoencoder(
                { InputSize = ModelFile.int cp "InputSize"; LatentSize = ModelFile.int cp "LatentSize"
                  HiddenSizes = ModelFile.ints cp "HiddenSizes"
                  Linear = ModelFile.choice cp "Linear" [ "true", true; "false", false ]
                  // Files of the first milestone lack these two: they were ReLU with PyTorch's initialisation.
                  Activation = ModelFile.activationOr cp Mlp.ReLU; Init = ModelFile.initOr cp Mlp.Uniform
                  Convolutional = ModelFile.imageShape cp; Seed = ModelFile.int cp "Seed"; Device = device }))
        (fun m -> m.Networks)

/// Writes the parameters of `model` to `path` as a PyTorch state_dict that `torch.load` reads, atomically;
/// the names are PyTorch's (`encoder.0.weight`, …; see PyTorch and docs/pytorch.md).
let exportPyTorch (path: string) (model: Autoencoder) = PyTorch.export path model.Networks

/// An autoencoder built from `config` with the parameters of a state_dict that PyTorch saved for the module
/// of docs/pytorch.md; errors as for Vae.importPyTorch.
let importPyTorch (path: string) (config: AutoencoderConfig) : Autoencoder =
    PyTorch.import path "Autoencoder" (fun () -> new Autoencoder(config)) (fun m -> m.Networks)

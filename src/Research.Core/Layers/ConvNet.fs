/// Convolutional encoders and decoders for images stored as rows (C-H-W order): stride-2 convolutions with
/// kernel 4 and padding 1, each halving the height and width, then a linear layer; the decoder mirrors them
/// with transposed convolutions. The layout of the TensorFlow and PyTorch VAE tutorials.
module Research.Core.ConvNet

open System
open TorchSharp

type Tensor = torch.Tensor

/// An image's channels, height and width.
type ImageShape =
    { /// C, the channels (1 for MNIST).
      Channels: int
      /// H, the height in pixels.
      Height: int
      /// W, the width in pixels.
      Width: int }

/// Checks that `shape` fits rows of `inputSize` values and `channels.Length` halvings, before any work:
/// C·H·W = inputSize, at least one convolution, every channel count positive, H and W divisible by 2^layers.
let validate (inputSize: int) (shape: ImageShape) (channels: int list) =
    Validate.positive "Convolutional.Channels" shape.Channels
    Validate.positive "Convolutional.Height" shape.Height
    Validate.positive "Convolutional.Width" shape.Width
    let pixels = int64 shape.Channels * int64 shape.Height * int64 shape.Width
    if pixels <> int64 inputSize then
        raise (ArgumentException(
            $"Convolutional is {shape.Channels}×{shape.Height}×{shape.Width} = {pixels} values per image, but InputSize is {inputSize}.", "Convolutional"))
    if List.isEmpty channels then
        raise (ArgumentException("A convolutional network needs at least one convolution: give HiddenSizes its channel counts, e.g. [32, 64].", "HiddenSizes"))
    Validate.sizes "HiddenSizes" channels
    let factor = 1 <<< channels.Length
    if shape.Height % factor <> 0 || shape.Width % factor <> 0 then
        raise (ArgumentException(
            $"{channels.Length} stride-2 convolutions halve the image {channels.Length} times, so its height and width must be divisible by {factor}; "
            + $"{shape.Height}×{shape.Width} is not.", "Convolutional"))

let private activationModule (activation: Mlp.Activation) : torch.nn.Module<Tensor, Tensor> =
    match activation with
    | Mlp.ReLU -> torch.nn.ReLU()
    | Mlp.Tanh -> torch.nn.Tanh()

let private sequential (layers: (string * torch.nn.Module<Tensor, Tensor>) list) =
    torch.nn.Sequential(layers |> List.map (fun (n, m) -> struct (n, m)) |> List.toArray)

/// [n, C·H·W] ↦ [n, outputs]: the rows as images, a stride-2 convolution (kernel 4, padding 1) per channel
/// count with `activation` after each, then a linear layer from the last feature map.
let encoder (shape: ImageShape) (channels: int list) (activation: Mlp.Activation) (outputs: int) : Modules.Sequential =
    let side = 1 <<< channels.Length
    let last = List.last channels
    let features = int64 last * int64 (shape.Height / side) * int64 (shape.Width / side)
    sequential
        [ yield "image", torch.nn.Unflatten(1L, [| int64 shape.Channels; int64 shape.Height; int64 shape.Width |]) :> _
          for i, (a, b) in List.indexed (List.pairwise (shape.Channels :: channels)) do
              yield $"conv{i}", torch.nn.Conv2d(int64 a, int64 b, 4L, stride = 2L, padding = 1L) :> _
              yield $"act{i}", activationModule activation
          yield "flatten", torch.nn.Flatten() :> _
          yield "linear", torch.nn.Linear(features, int64 outputs) :> _ ]

/// [n, latent] ↦ [n, outputChannels·H·W]: a linear layer to the encoder's last feature map, then transposed
/// convolutions mirroring the encoder's, `activation` between them, the last one emitting `outputChannels`
/// (C for Bernoulli logits or an autoencoder; 2C for Gaussian means then log-variances, channel-major, so the
/// flattened row holds all the means first).
let decoder (shape: ImageShape) (channels: int list) (activation: Mlp.Activation) (latent: int) (outputChannels: int) : Modules.Sequential =
    let side = 1 <<< channels.Length
    let reversed = List.rev channels
    let h, w = shape.Height / side, shape.Width / side
    let first = List.head reversed
    sequential
        [ yield "linear", torch.nn.Linear(int64 latent, int64 first * int64 h * int64 w) :> _
          yield "act", activationModule activation
          yield "map", torch.nn.Unflatten(1L, [| int64 first; int64 h; int64 w |]) :> _
          let outs = List.tail reversed @ [ outputChannels ]
          for i, (a, b) in List.indexed (List.zip reversed outs) do
              yield $"deconv{i}", torch.nn.ConvTranspose2d(int64 a, int64 b, 4L, stride = 2L, padding = 1L) :> _
              if i < outs.Length - 1 then yield $"act{i}", activationModule activation
          yield "flatten", torch.nn.Flatten() :> _ ]

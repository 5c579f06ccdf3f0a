/// Multilayer perceptrons, built and initialised deterministically from a generator.
module Research.Core.Mlp

open System
open TorchSharp

type Tensor = torch.Tensor

/// The nonlinearity between hidden layers.
type Activation =
    /// max(0, x): the default of modern autoencoders.
    | ReLU
    /// tanh(x): the hidden units of the AEVB paper.
    | Tanh

/// How weights are initialised.
type Init =
    /// PyTorch's default for nn.Linear: weights and biases ~ U(−1/√fan_in, 1/√fan_in).
    | Uniform
    /// Weights and biases ~ N(0, std²). The AEVB paper's "N(0, 0.01)" is Normal 0.01 (see Vae.paper).
    | Normal of std: float

/// Checks an initialisation: a Normal standard deviation must be finite and positive.
let validateInit (init: Init) =
    match init with
    | Normal std -> Validate.positiveFinite "InitStd" std
    | Uniform -> ()

/// A stack of affine layers `sizes[0] → sizes[1] → … → sizes[n]` with `activation` between them
/// (none after the last), or no nonlinearity at all when `activation` is None.
let create (sizes: int list) (activation: Activation option) : Modules.Sequential =
    if List.length sizes < 2 then invalidArg "sizes" "An MLP needs at least an input and an output size."
    let layers =
        sizes
        |> List.pairwise
        |> List.mapi (fun i (a, b) ->
            let linear = ($"linear{i}", torch.nn.Linear(int64 a, int64 b) :> torch.nn.Module<Tensor, Tensor>)
            let isLast = i = List.length sizes - 2
            match activation with
            | Some ReLU when not isLast -> [ linear; ($"relu{i}", torch.nn.ReLU() :> torch.nn.Module<Tensor, Tensor>) ]
            | Some Tanh when not isLast -> [ linear; ($"tanh{i}", torch.nn.Tanh() :> torch.nn.Module<Tensor, Tensor>) ]
            | _ -> [ linear ])
        |> List.concat
    torch.nn.Sequential(layers |> List.map (fun (n, m) -> struct (n, m)) |> List.toArray)

/// Re-initialises every parameter of the affine and convolutional layers of `modules` from `generator` (the
/// construction-time init uses the process-global RNG, which is neither reproducible across threads nor
/// seedable per model). Uniform is PyTorch's default for these layers: weights and biases ~ U(±1/√fan_in),
/// fan_in = weight.shape[1] × the kernel's size (for a transposed convolution, PyTorch's convention too).
/// A layer given directly counts as well as one inside a container.
let initialise (generator: torch.Generator) (init: Init) (modules: torch.nn.Module seq) =
    use _ = torch.no_grad ()
    for m in modules do
        // TorchSharp's named_modules leaves out the module itself (PyTorch's includes it): a bare layer,
        // as LinearVae's encoder is, would otherwise keep its unseeded construction-time weights.
        for child in Seq.append [ m ] (seq { for struct (_, c) in m.named_modules () -> c }) do
            let layer =
                match child with
                | :? Modules.Linear as l -> Some(l.weight, l.bias)
                | :? Modules.Conv2d as c -> Some(c.weight, c.bias)
                | :? Modules.ConvTranspose2d as c -> Some(c.weight, c.bias)
                | _ -> None
            match layer with
            | Some(weight, bias) ->
                let fanIn = weight.shape |> Array.skip 1 |> Array.fold (*) 1L |> float
                for p in [ weight; bias ] do
                    if not (isNull p) then
                        use fresh =
                            match init with
                            | Uniform ->
                                let bound = 1.0 / sqrt fanIn
                                use width = Scalars.ofFloat (2.0 * bound)
                                use low = Scalars.ofFloat bound
                                torch.rand(p.shape, dtype = p.dtype, device = p.device, generator = generator).mul_(width).sub_(low)
                            | Normal std ->
                                use s = Scalars.ofFloat std
                                torch.randn(p.shape, dtype = p.dtype, device = p.device, generator = generator).mul_(s)
                        p.copy_(fresh) |> ignore
            | None -> ()

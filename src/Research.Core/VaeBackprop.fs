/// The gradient of the SGVB estimator B (the paper's eq. 7) for a VAE whose encoder and decoder are the
/// MLPs of Mlp.create, derived in closed form and computed layer by layer without recording an autograd
/// graph. libtorch's autograd computes the same derivatives, but for this loss it records about thirty
/// nodes per step, allocates a gradient for every weight before adding it into the parameter's, and
/// walks the graph; here each weight gradient is one product written straight into the parameter's
/// gradient. The forward values come from the same operations as Vae's autograd loss (the same layers,
/// Gaussian.sample on the same generator, the same likelihood and KL functions), so the loss is the same;
/// tests compare the gradients with autograd's on random architectures.
module Research.Core.VaeBackprop

open TorchSharp

type Tensor = torch.Tensor

/// The affine layers of an MLP built by Mlp.create with `activation` between them, input side first.
/// ArgumentException for any other sequence of modules: the gradient below is derived for exactly that one.
let affineLayers (activation: Mlp.Activation) (net: torch.nn.Module) : Modules.Linear list =
    let isActivation (m: torch.nn.Module) =
        match activation, m with
        | Mlp.ReLU, (:? Modules.ReLU) | Mlp.Tanh, (:? Modules.Tanh) -> true
        | _ -> false
    let rec layers (modules: torch.nn.Module list) =
        match modules with
        | [ :? Modules.Linear as l ] -> [ l ]
        | (:? Modules.Linear as l) :: a :: rest when isActivation a -> l :: layers rest
        | _ -> invalidArg "net" $"Expected affine layers with {activation} between them, as Mlp.create builds."
    match net with
    | :? Modules.Sequential -> layers [ for struct (_, m) in net.named_children () -> m ]
    | _ -> invalidArg "net" $"Expected a Sequential of affine layers with {activation} between them, as Mlp.create builds."

/// The decoder's observation model, as the gradient needs it.
type Observation =
    /// Bernoulli pixels with logits from the decoder.
    | BernoulliLogits
    /// Gaussian pixels with [mean, log-variance] from the decoder.
    | GaussianMeanLogVar

/// The derivative of the activation at its output y, multiplied into δ in place: ReLU's is 1 where y > 0
/// (autograd uses the same convention at 0), tanh's is 1 − y².
let private throughActivation (activation: Mlp.Activation) (y: Tensor) (delta: Tensor) =
    match activation with
    | Mlp.ReLU ->
        // y ≥ 0 after ReLU, so sign(y) is exactly the 0/1 mask.
        use mask = y.sign()
        delta.mul_(mask) |> ignore
    | Mlp.Tanh ->
        use y2 = y * y
        use d = torch.ones_like(y).sub_(y2)
        delta.mul_(d) |> ignore

/// Runs the layers on `input`, keeping each layer's input; returns them (input first) and the output.
let private forward (activation: Mlp.Activation) (layers: Modules.Linear list) (input: Tensor) =
    let inputs = ResizeArray<Tensor>([ input ])
    let mutable a = input
    for i, l in List.indexed layers do
        let y = l.forward a
        if i < layers.Length - 1 then
            let h =
                match activation with
                | Mlp.ReLU -> torch.nn.functional.relu y
                | Mlp.Tanh -> torch.tanh y
            inputs.Add h
            a <- h
        else a <- y
    List.ofSeq inputs, a

/// Writes dL/dW = δᵀ·a and dL/db = Σ_rows δ into the parameters' gradients (replacing what they held).
let private writeGradients (l: Modules.Linear) (delta: Tensor) (input: Tensor) =
    use wg = l.weight.grad
    match wg with
    | null -> l.weight.grad <- delta.t().mm(input)
    | g -> g.addmm_(delta.t(), input, 0.0f, 1.0f) |> ignore
    use bg = l.bias.grad
    use db = delta.sum(0L)
    match bg with
    | null -> l.bias.grad <- db.clone ()
    | g -> g.copy_(db) |> ignore

/// Backpropagates δ (the loss's derivative at the network's output) through `layers`, given each layer's
/// input; fills every weight's gradient and returns the derivative at the network's input when
/// `needInput` (otherwise None: the first layer's input product is skipped).
let private backward (activation: Mlp.Activation) (layers: Modules.Linear list) (inputs: Tensor list) (delta: Tensor) (needInput: bool) =
    let layers, inputs = List.toArray layers, List.toArray inputs
    let mutable d = delta
    let mutable result = None
    for i in layers.Length - 1 .. -1 .. 0 do
        writeGradients layers.[i] d inputs.[i]
        if i > 0 then
            let next = d.mm(layers.[i].weight)
            throughActivation activation inputs.[i] next
            d <- next
        elif needInput then
            result <- Some(d.mm(layers.[i].weight))
    result

/// The training step of a VAE with these networks: a function of a generator and a minibatch `x` that
/// returns the β-weighted negative ELBO (SGVB B, L = `samples` draws from the generator, averaged over
/// the rows: the value Vae's loss gives) and writes its derivative into every parameter's gradient. The
/// returned scalar carries no graph. The networks' structure is checked once, here (see affineLayers).
let lossAndGradients (encoder: torch.nn.Module) (decoder: torch.nn.Module) (activation: Mlp.Activation)
                     (observation: Observation) (samples: int) (beta: float) : torch.Generator -> Tensor -> Tensor =
    let encoderLayers, decoderLayers = affineLayers activation encoder, affineLayers activation decoder
    fun (generator: torch.Generator) (x: Tensor) ->
        use _ = torch.no_grad ()
        // Every temporary of the step is freed on return; only the loss leaves.
        use scope = torch.NewDisposeScope()
        let rows = x.shape.[0]
        let n = int64 samples * rows
        let latent = encoderLayers.[encoderLayers.Length - 1].weight.shape.[0] / 2L
        // Scalars made here are disposed here (TorchSharp leaves implicit ones to the finalizer).
        use perRow = (1.0 / float n).ToScalar()
        use half = (0.5).ToScalar()
        use halfPerRow = (0.5 / float n).ToScalar()
        use betaPerExample = (beta / float rows).ToScalar()
        use halfBetaPerExample = (0.5 * beta / float rows).ToScalar()
        use betaS = beta.ToScalar()
        use one = (1.0).ToScalar()
        // Forward, keeping what the derivatives need.
        let encoderInputs, h = forward activation encoderLayers x
        let parts = h.chunk(2L, -1L)
        let mu, logVar = parts.[0], parts.[1]
        let z = Gaussian.sample generator samples mu logVar // [S,B,D]
        let decoderInputs, out = forward activation decoderLayers (z.view(n, latent))
        let out3 = out.view(int64 samples, rows, -1L)
        let reconstruction, deltaOut =
            match observation with
            | BernoulliLogits ->
                // d/dℓ of −(1/(S·B)) Σ [x ℓ − softplus ℓ] is (σ(ℓ) − x) / (S·B).
                Likelihood.bernoulliLogits out3 x, torch.sigmoid(out3).sub_(x).mul_(perRow)
            | GaussianMeanLogVar ->
                let mp = out3.chunk(2L, -1L)
                let mean, lv = mp.[0], mp.[1]
                // −log N(x; m, e^v) = ½[log 2π + v + (x − m)² e^−v]: d/dm = −(x − m) e^−v, d/dv = ½(1 − (x − m)² e^−v).
                let precision = torch.exp(lv.neg())
                let residual = x - mean
                let scaled = residual * precision
                let dMean = scaled.neg().mul_(perRow)
                let dLogVar = (residual * scaled).neg_().add_(one).mul_(halfPerRow)
                Likelihood.gaussian mean lv x, torch.cat([| dMean; dLogVar |], -1L)
        let kl = Gaussian.klToStandardNormal mu logVar
        let loss = (kl * betaS - reconstruction.mean([| 0L |])).mean()
        // Backward through the decoder to z, then through z = μ + σε (∂z/∂μ = 1, ∂z/∂log σ² = ½σε = ½(z − μ))
        // and the closed-form KL (∂/∂μ = μ, ∂/∂log σ² = ½(σ² − 1)), the KL's terms scaled by β/B.
        let dz = (backward activation decoderLayers decoderInputs (deltaOut.view(n, -1L)) true).Value.view(int64 samples, rows, latent)
        let dMu = dz.sum(0L).add_(mu, alpha = betaPerExample)
        let dLogVar = (dz * (z - mu)).sum(0L).mul_(half).add_(torch.expm1(logVar).mul_(halfBetaPerExample))
        backward activation encoderLayers encoderInputs (torch.cat([| dMu; dLogVar |], -1L)) false |> ignore
        scope.MoveToOuter(loss)

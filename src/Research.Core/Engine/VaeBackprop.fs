/// The gradients of the SGVB estimator B (the paper's eq. 7) and of Burda et al.'s IWAE bound for a VAE whose
/// encoder and decoder are the MLPs of Mlp.create, derived in closed form and computed layer by layer without recording an autograd
/// graph. libtorch's autograd computes the same derivatives, but for this loss it records about thirty
/// nodes per step, allocates a gradient for every weight before adding it into the parameter's, and
/// walks the graph; here each weight gradient is one product written straight into the parameter's
/// gradient. The forward values come from the same operations as Vae's autograd loss (the same layers,
/// Gaussian.sample on the same generator, the same likelihood and KL functions), so the loss is the same;
/// tests compare the gradients with autograd's on random architectures.
module internal Research.Core.VaeBackprop

open System
open TorchSharp
open Research.Core.Scalars.Operators

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

/// −∂ log p(x|out)/∂out, the per-element derivative of the decoder's negative log-likelihood at its output
/// `out` [S,B,·], unscaled, and log p(x|out) [S,B] itself (by the same function as Vae's autograd loss).
let private likelihoodAndGradient (observation: Observation) (out: Tensor) (x: Tensor) : Tensor * Tensor =
    match observation with
    | BernoulliLogits ->
        // d/dℓ of −[x ℓ − softplus ℓ] is σ(ℓ) − x.
        Likelihood.bernoulliLogits out x, torch.sigmoid(out).sub_(x)
    | GaussianMeanLogVar ->
        let mp = out.chunk(2L, -1L)
        let mean, lv = mp.[0], mp.[1]
        // −log N(x; m, e^v) = ½[log 2π + v + (x − m)² e^−v]: d/dm = −(x − m) e^−v, d/dv = ½(1 − (x − m)² e^−v).
        let precision = torch.exp(lv.neg())
        let residual = x - mean
        let scaled = residual * precision
        let dMean = scaled.neg()
        let dLogVar = (residual * scaled).neg_().add_(Scalars.one, Scalars.one).mul_(Scalars.half)
        Likelihood.gaussian mean lv x, torch.cat([| dMean; dLogVar |], -1L)

/// The forward pass both objectives share: the encoder on x, (μ, log σ²), z = μ + σε by Gaussian.sample on
/// `generator` ([S,B,D], as Vae's autograd loss draws it), and the decoder on all S·B rows of z at once.
type private Pass =
    { EncoderInputs: Tensor list; Mu: Tensor; LogVar: Tensor; Z: Tensor
      DecoderInputs: Tensor list; Out: Tensor }

/// Runs the forward pass (see Pass) on the minibatch `x` with `samples` draws of z.
let private forwardPass activation encoderLayers (decoderLayers: Modules.Linear list) (generator: torch.Generator) (samples: int) (x: Tensor) =
    let rows = x.shape.[0]
    let encoderInputs, h = forward activation encoderLayers x
    let parts = h.chunk(2L, -1L)
    let mu, logVar = parts.[0], parts.[1]
    let z = Gaussian.sample generator samples mu logVar // [S,B,D]
    let decoderInputs, out = forward activation decoderLayers (z.view(int64 samples * rows, -1L))
    { EncoderInputs = encoderInputs; Mu = mu; LogVar = logVar; Z = z
      DecoderInputs = decoderInputs; Out = out.view(int64 samples, rows, -1L) }

/// Backward from δ at the decoder's output [S,B,·] to z: the decoder's weight gradients are written, and
/// ∂L/∂z [S,B,D] through the decoder is returned.
let private decoderBackward activation decoderLayers (pass: Pass) (deltaOut: Tensor) =
    let n = pass.Z.shape.[0] * pass.Z.shape.[1]
    (backward activation decoderLayers pass.DecoderInputs (deltaOut.view(n, -1L)) true).Value.view_as(pass.Z)

/// Backward from ∂L/∂z [S,B,D] through z = μ + σε (∂z/∂μ = 1, ∂z/∂log σ² = ½σε = ½(z − μ)) to (∂L/∂μ,
/// ∂L/∂log σ²) [B,D], to which `direct` adds the loss's own terms in μ and log σ²; then through the encoder.
let private encoderBackward activation encoderLayers (pass: Pass) (dz: Tensor) (direct: Tensor -> Tensor -> unit) =
    let dMu = dz.sum(0L)
    let dLogVar = (dz * (pass.Z - pass.Mu)).sum(0L).mul_(Scalars.half)
    direct dMu dLogVar
    backward activation encoderLayers pass.EncoderInputs (torch.cat([| dMu; dLogVar |], -1L)) false |> ignore

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
        // Bound with use: alive through every call that reads them, and freed here (see Scalars).
        use perRow = Scalars.ofFloat (1.0 / (float samples * float rows))
        use betaPerExample = Scalars.ofFloat (beta / float rows)
        use halfBetaPerExample = Scalars.ofFloat (0.5 * beta / float rows)
        use betaS = Scalars.ofFloat beta
        let pass = forwardPass activation encoderLayers decoderLayers generator samples x
        let reconstruction, dOut = likelihoodAndGradient observation pass.Out x
        let kl = Gaussian.klToStandardNormal pass.Mu pass.LogVar
        let loss = (kl * betaS - reconstruction.mean([| 0L |])).mean()
        // Each of the S·B reconstruction terms weighs 1/(S·B); the closed-form KL adds β/B times its
        // derivatives ∂/∂μ = μ, ∂/∂log σ² = ½(σ² − 1).
        let dz = decoderBackward activation decoderLayers pass (dOut.mul_(perRow))
        encoderBackward activation encoderLayers pass dz (fun dMu dLogVar ->
            dMu.add_(pass.Mu, alpha = betaPerExample) |> ignore
            dLogVar.add_(torch.expm1(pass.LogVar).mul_(halfBetaPerExample), Scalars.one) |> ignore)
        scope.MoveToOuter(loss)

/// The training step on Burda et al.'s IWAE bound (Estimators.iwae) with K = `samples`: returns
/// −mean_rows log (1/K) Σ_k w_k, log w_k = log p(x|z_k) + log p(z_k) − log q(z_k|x), the value Vae's autograd
/// loss gives for the same generator state (the same draw of z [K,B,D], the same functions), and writes its
/// derivative into every parameter's gradient. With w̃ = softmax_k(log w) (the derivative of log-sum-exp), the
/// gradient is −(1/B) Σ_k w̃_k ∇ log w_k: the decoder sees each sample's output derivative weighted by w̃_k/B; z_k
/// carries −∂(log p(x|z) + log p(z))/∂z (the decoder's derivative at its input, plus z) with the same weight to μ
/// and log σ²; and log w's −log q(z|x) at fixed ε is ½ Σ_d (log 2π + log σ²_d + ε²_d), independent of μ, so the
/// loss gains −½/B in each log σ²_d (Σ_k w̃_k = 1).
/// The returned scalar carries no graph. The networks' structure is checked once, here (see affineLayers).
let iwaeLossAndGradients (encoder: torch.nn.Module) (decoder: torch.nn.Module) (activation: Mlp.Activation)
                         (observation: Observation) (samples: int) : torch.Generator -> Tensor -> Tensor =
    let encoderLayers, decoderLayers = affineLayers activation encoder, affineLayers activation decoder
    fun (generator: torch.Generator) (x: Tensor) ->
        use _ = torch.no_grad ()
        use scope = torch.NewDisposeScope()
        let rows = x.shape.[0]
        use perExample = Scalars.ofFloat (1.0 / float rows)
        use halfPerExample = Scalars.ofFloat (0.5 / float rows)
        use logK = Scalars.ofFloat (Math.Log(float samples))
        let pass = forwardPass activation encoderLayers decoderLayers generator samples x
        let logLikelihood, dOut = likelihoodAndGradient observation pass.Out x
        // As Estimators.iwae, term for term, so that the loss is autograd's to the bit.
        let logW = logLikelihood +. Gaussian.logStandardNormal pass.Z - Gaussian.logDensity pass.Mu pass.LogVar pass.Z // [K,B]
        let loss = logW.logsumexp(0L).sub_(logK).mean().neg()
        // w̃ by softmax (log w − max, exact in floating point) rather than autograd's exp(log w − logsumexp): at
        // log w ≈ −545 (MNIST at initialisation) the latter loses about 3·10⁻⁵ of w̃ in float32, this 10⁻⁷, so
        // float32 gradients differ from autograd's by about 10⁻⁵ relative, autograd's being the rounder.
        let weights = logW.softmax(0L).mul_(perExample).unsqueeze(-1L) // w̃_k/B, [K,B,1]
        let dz = decoderBackward activation decoderLayers pass (dOut.mul_(weights))
        // −∂ log p(z)/∂z = z, weighted like the rest of sample k.
        dz.addcmul_(pass.Z, weights, Scalars.one) |> ignore
        // log w's −log q(z|x) at fixed ε is ½ Σ_d (log 2π + log σ²_d + ε²_d): ∂(−log w)/∂log σ²_d = −½, weighted
        // by w̃_k/B and summed over k (Σ_k w̃_k = 1): −½/B. It does not depend on μ.
        encoderBackward activation encoderLayers pass dz (fun _ dLogVar -> dLogVar.sub_(halfPerExample) |> ignore)
        scope.MoveToOuter(loss)

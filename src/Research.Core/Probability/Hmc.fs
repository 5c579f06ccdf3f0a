/// Hamiltonian Monte Carlo (Neal 2011, "MCMC using Hamiltonian dynamics", §5.2–5.3) on many independent
/// chains at once. A position is a tensor [C..., D] (chains [C,D], or chains × examples [C,B,D]); the
/// target is a log-density log π, known up to a constant, that maps positions to one value per chain
/// [C...], and whose gradient comes from autograd. Each chain's log-density must depend on its own
/// position only, so that the gradient of their sum is every chain's own gradient. The momentum is
/// p ~ N(0, I) and the Hamiltonian H(x, p) = −log π(x) + ½|p|². Step sizes are tensors that broadcast
/// over the chains: a scalar, one per example [B], or one per chain [C...]. All randomness (momenta and
/// the Metropolis test) comes from an explicit torch.Generator, never from the global RNG.
module Research.Core.Hmc

open System
open TorchSharp
open Research.Core.Interop
open Research.Core.Scalars.Operators

/// A position with the target's log-density and its gradient there, so that a trajectory starting at it
/// needs no further evaluation, and a rejected proposal leaves the chain with values already known.
type Point =
    { /// x [C..., D].
      Position: Tensor
      /// log π(x) [C...], up to the target's constant.
      LogDensity: Tensor
      /// ∇ₓ log π(x) [C..., D].
      Gradient: Tensor }

/// One Metropolis-adjusted trajectory per chain.
type Transition =
    { /// The chains' new points: the proposal where it was accepted, the old point elsewhere.
      Point: Point
      /// min(1, exp(H(start) − H(proposal))) [C...], 0 where the proposal's energy is NaN.
      AcceptanceProbability: Tensor
      /// Which proposals were accepted [C...] (boolean).
      Accepted: Tensor }

/// Step-size adaptation by multiplicative steps towards a target acceptance rate, as in Wu et al. (2017)'s
/// AIS code: after a transition, ε ← ε·e^(+Rate) if the mean acceptance probability is above the target,
/// ε·e^(−Rate) otherwise, kept within [MinStepSize, MaxStepSize]. Rate = 0 keeps ε fixed.
type Adaptation =
    { /// The acceptance rate aimed at; 0.65 is the optimum for HMC in high dimension (Beskos et al. 2013).
      TargetAcceptance: float
      /// The log of the factor per adjustment; 0.02 is Wu et al.'s ×1.02 / ×0.98.
      Rate: float
      /// The smallest step size allowed.
      MinStepSize: float
      /// The largest step size allowed.
      MaxStepSize: float }

/// Wu et al.'s settings: target 0.65, factors e^(±0.02), ε within [10⁻⁴, 0.5].
let defaultAdaptation = { TargetAcceptance = 0.65; Rate = 0.02; MinStepSize = 1e-4; MaxStepSize = 0.5 }

/// Checks an adaptation's settings (ArgumentException naming the setting), for every user of HMC.
let validateAdaptation (a: Adaptation) =
    Validate.nonNegativeFinite "Adaptation.Rate" a.Rate
    Validate.positiveFinite "Adaptation.MinStepSize" a.MinStepSize
    Validate.positiveFinite "Adaptation.MaxStepSize" a.MaxStepSize
    if a.MinStepSize > a.MaxStepSize then
        invalidArg "config" $"Adaptation.MinStepSize ({a.MinStepSize}) exceeds MaxStepSize ({a.MaxStepSize})."
    if not (a.TargetAcceptance > 0.0 && a.TargetAcceptance < 1.0) then
        raise (System.ArgumentOutOfRangeException("Adaptation.TargetAcceptance", a.TargetAcceptance, "The target acceptance must lie in (0, 1)."))

/// The chains' shape [C...] of a position [C..., D].
let private chainShape (position: Tensor) = Array.truncate (position.shape.Length - 1) position.shape

/// A step size as a tensor of the position's dtype and device that broadcasts over the last (latent)
/// dimension. Its shape must be a trailing part of the chains' shape: [], [B] for [C,B,D], or [C...].
let private broadcastStep (stepSize: Tensor) (position: Tensor) =
    let chains = chainShape position
    let shape = stepSize.shape
    if shape.Length > chains.Length || shape <> Array.sub chains (chains.Length - shape.Length) shape.Length then
        invalidArg "stepSize" $"The step sizes have shape %A{shape}, which is not a trailing part of the chains' shape %A{chains}."
    stepSize.``to``(position.dtype, position.device).unsqueeze(-1L)

/// Evaluates the target at `position`: log π per chain and its gradient by autograd, both detached, so no
/// graph outlives the call (the graph through the target's own parameters is freed here and nothing
/// accumulates in their .grad). Works inside torch.no_grad(): gradient recording is switched on locally.
let evaluate (logDensity: Tensor -> Tensor) (position: Tensor) : Point =
    use _ = torch.enable_grad true
    let x = position.detach().requires_grad_(true)
    let y = logDensity x
    if y.shape <> chainShape position then
        invalidArg "logDensity" $"The log-density must give one value per chain, shape %A{chainShape position}, got %A{y.shape}."
    let gradient =
        if not y.requires_grad then torch.zeros_like(x)
        else
            let g = torch.autograd.grad([| y.sum() |], [| x |], allow_unused = true).[0]
            if isNull g || g.Handle = IntPtr.Zero then torch.zeros_like(x) else g
    { Position = position.detach(); LogDensity = y.detach(); Gradient = gradient.detach() }

/// The Hamiltonian H = −log π(x) + ½|p|² per chain [C...].
let hamiltonian (point: Point) (momentum: Tensor) : Tensor =
    -point.LogDensity +. (momentum * momentum).sum(-1L) * Scalars.half

/// `steps` leapfrog steps of size ε (Neal's eq. 5.18–5.20): a half step p ← p + ½ε∇log π(x), then full
/// steps x ← x + εp, p ← p + ε∇log π(x), the last momentum step a half one. Returns the end point and the
/// end momentum (not negated). The map is volume-preserving and reversible: from the end point with the
/// momentum negated, the same steps return to the start. Each step evaluates the target once (the start's
/// gradient is the Point's) and frees its temporaries at once.
let leapfrog (logDensity: Tensor -> Tensor) (stepSize: Tensor) (steps: int) (start: Point) (momentum: Tensor) : Point * Tensor =
    if steps < 1 then raise (ArgumentOutOfRangeException("steps", steps, "At least one leapfrog step is required."))
    if momentum.shape <> start.Position.shape then
        invalidArg "momentum" $"The momentum has shape %A{momentum.shape}, the position %A{start.Position.shape}."
    use outer = torch.NewDisposeScope()
    let eps = broadcastStep stepSize start.Position
    let halfEps = eps * Scalars.half
    let mutable point = start
    let mutable p = momentum +. halfEps * start.Gradient
    for i in 1 .. steps do
        let previous, previousP = point, p
        use scope = torch.NewDisposeScope()
        let next = evaluate logDensity (point.Position +. eps * p)
        let nextP = p +. (if i = steps then halfEps else eps) * next.Gradient
        point <- { Position = scope.MoveToOuter(next.Position)
                   LogDensity = scope.MoveToOuter(next.LogDensity)
                   Gradient = scope.MoveToOuter(next.Gradient) }
        p <- scope.MoveToOuter(nextP)
        // The intermediate states are this function's own; the start belongs to the caller.
        if i > 1 then
            previous.Position.Dispose()
            previous.LogDensity.Dispose()
            previous.Gradient.Dispose()
        previousP.Dispose()
    { Position = outer.MoveToOuter(point.Position)
      LogDensity = outer.MoveToOuter(point.LogDensity)
      Gradient = outer.MoveToOuter(point.Gradient) },
    outer.MoveToOuter(p)

/// One HMC transition per chain: a fresh momentum p ~ N(0, I) from `generator`, a leapfrog trajectory, and
/// the Metropolis test u < exp(H(x, p) − H(x', p')) with u ~ U[0, 1) from `generator`, which leaves π
/// invariant. A proposal whose energy is NaN or +∞ (a diverging trajectory) is rejected.
let transition (generator: torch.Generator) (logDensity: Tensor -> Tensor) (stepSize: Tensor) (steps: int) (current: Point) : Transition =
    use scope = torch.NewDisposeScope()
    let position = current.Position
    let chains = chainShape position
    let momentum = torch.randn(position.shape, dtype = position.dtype, device = position.device, generator = generator)
    let proposal, endMomentum = leapfrog logDensity stepSize steps current momentum
    let logRatio = hamiltonian current momentum - hamiltonian proposal endMomentum
    let probability = torch.nan_to_num(torch.exp(logRatio.clamp_max(Scalars.zero)), nan = 0.0)
    let u = torch.rand(chains, dtype = position.dtype, device = position.device, generator = generator)
    let accepted = u.lt(probability)
    let mask = accepted.unsqueeze(-1L)
    { Point =
        { Position = scope.MoveToOuter(torch.where(mask, proposal.Position, position))
          LogDensity = scope.MoveToOuter(torch.where(accepted, proposal.LogDensity, current.LogDensity))
          Gradient = scope.MoveToOuter(torch.where(mask, proposal.Gradient, current.Gradient)) }
      AcceptanceProbability = scope.MoveToOuter(probability)
      Accepted = scope.MoveToOuter(accepted) }

/// The adapted step sizes after a transition whose acceptance probabilities are `acceptance` [C...]: each
/// step size is compared with the mean acceptance of the chains it serves (one per example [B] averages
/// over the C chains of [C,B]; a scalar over all), then multiplied by e^(±Rate) and clamped.
let adaptStepSize (adaptation: Adaptation) (stepSize: Tensor) (acceptance: Tensor) : Tensor =
    let leading = acceptance.dim () - stepSize.dim ()
    if leading < 0 || acceptance.shape.[int leading ..] <> stepSize.shape then
        invalidArg "stepSize" $"The step sizes have shape %A{stepSize.shape}, which is not a trailing part of the chains' shape %A{acceptance.shape}."
    use scope = torch.NewDisposeScope()
    let mean = if leading = 0L then acceptance else acceptance.mean([| 0L .. leading - 1L |])
    // +1 above the target, −1 at or below it.
    use target = Scalars.ofFloat adaptation.TargetAcceptance
    use rate = Scalars.ofFloat adaptation.Rate
    use least = Scalars.ofFloat adaptation.MinStepSize
    use most = Scalars.ofFloat adaptation.MaxStepSize
    let direction = mean.gt(target).to_type(stepSize.dtype) * Scalars.two - Scalars.one
    let adapted = (stepSize * torch.exp(direction * rate)).clamp(least, most)
    scope.MoveToOuter(adapted)

/// `transitions` HMC transitions with a fixed step size from `position` [C..., D]: the chains' last points
/// and each chain's mean acceptance probability [C...]. A fixed step size keeps π invariant (adapt during a
/// warm-up with transition and adaptStepSize, then run with the step size reached).
let run (generator: torch.Generator) (logDensity: Tensor -> Tensor) (stepSize: Tensor) (steps: int) (transitions: int) (position: Tensor) : Point * Tensor =
    if transitions < 0 then raise (ArgumentOutOfRangeException("transitions", transitions, "The number of transitions must be ≥ 0."))
    use scope = torch.NewDisposeScope()
    let mutable point = evaluate logDensity position
    let mutable acceptance = torch.zeros(chainShape position, dtype = position.dtype, device = position.device)
    for _ in 1 .. transitions do
        use step = torch.NewDisposeScope()
        let previous, previousAcceptance = point, acceptance
        let t = transition generator logDensity stepSize steps point
        point <- { Position = step.MoveToOuter(t.Point.Position)
                   LogDensity = step.MoveToOuter(t.Point.LogDensity)
                   Gradient = step.MoveToOuter(t.Point.Gradient) }
        acceptance <- step.MoveToOuter(acceptance +. t.AcceptanceProbability)
        // Only the current state is kept: memory does not grow with the number of transitions.
        previous.Position.Dispose()
        previous.LogDensity.Dispose()
        previous.Gradient.Dispose()
        previousAcceptance.Dispose()
    let meanAcceptance =
        if transitions = 0 then acceptance
        else
            use count = Scalars.ofFloat (float transitions)
            acceptance / count
    { Position = scope.MoveToOuter(point.Position)
      LogDensity = scope.MoveToOuter(point.LogDensity)
      Gradient = scope.MoveToOuter(point.Gradient) },
    scope.MoveToOuter(meanAcceptance)

/// Annealed importance sampling (Neal 2001) of the marginal likelihood log p(x) of a decoder-based model,
/// as Wu et al. (2017, "On the quantitative analysis of decoder-based generative models") evaluate VAEs and
/// GANs, and its reverse run for bidirectional Monte Carlo (Grosse et al. 2015, "Sandwiching the marginal
/// likelihood using bidirectional Monte Carlo"). The path runs through the geometric averages
/// f_t(z) = p(z) p(x|z)^β_t, 0 = β_0 < β_1 < … < β_T = 1, from the prior N(0, I) (normalised, Z_0 = 1) to
/// the unnormalised posterior p(z) p(x|z) (Z_T = p(x)); an HMC transition leaves each intermediate f_t
/// invariant. A forward chain's weight log w = Σ_t (β_t − β_{t−1}) log p(x|z_{t−1}) has E[w] = p(x), so the
/// log of the chains' mean weight is a stochastic lower bound on log p(x) (Jensen); a reverse chain started
/// from an exact posterior sample gives a stochastic upper bound.
module Research.Core.Ais

open System
open TorchSharp
open Research.Core.Interop
open Research.Core.Scalars.Operators

/// How β runs from 0 to 1 over the T steps.
type Schedule =
    /// β_t = t/T.
    | Linear
    /// β_t = (σ(δ(2t/T − 1)) − σ(−δ)) / (σ(δ) − σ(−δ)), Grosse et al. (2015)'s sigmoidal schedule: dense near
    /// β = 0 and β = 1, where the intermediate distributions change fastest. δ = 4 in their work.
    | Sigmoidal of delta: float

/// The settings of an AIS run. See defaults.
type Config =
    { /// The number T of annealing steps: T + 1 distributions β_0 = 0, …, β_T = 1, T weight updates and
      /// T − 1 HMC transitions (one at each strictly intermediate β). T = 1 is importance sampling from the prior.
      Steps: int
      /// How the β_t are spaced.
      Schedule: Schedule
      /// Leapfrog steps per HMC transition.
      LeapfrogSteps: int
      /// The step size every example's chains start with.
      InitialStepSize: float
      /// How the step size follows the acceptance rate: one step size per example, adapted after each
      /// transition to the mean acceptance probability of that example's chains (Rate = 0 keeps it fixed).
      Adaptation: Hmc.Adaptation
      /// Examples annealed together: the chains hold Chunk·samples·D latents at once and the decoder sees
      /// Chunk·samples rows per evaluation, so memory is bounded whatever the number of examples.
      Chunk: int }

/// The defaults, after Wu et al. (2017)'s code and Grosse et al. (2015): T = 500 steps on a sigmoidal
/// schedule (δ = 4), 10 leapfrog steps per transition, ε₀ = 0.1 adapted by ×e^(±0.02) towards 65%
/// acceptance within [10⁻⁴, 0.5], 100 examples at a time. Wu et al. start at ε₀ = 0.01 on a linear
/// schedule; on the sigmoidal one β stays near 0 for the first hundred steps, where chains that start
/// from the prior need steps of order 1 to move, and ε₀ = 0.01 would take ~100 adaptations to get there.
let defaults =
    { Steps = 500
      Schedule = Sigmoidal 4.0
      LeapfrogSteps = 10
      InitialStepSize = 0.1
      Adaptation = Hmc.defaultAdaptation
      Chunk = 100 }

/// What AIS reports per example.
type Estimate =
    { /// The estimate of log p(x) per example [B]: log (1/K) Σ_k w_k for forward chains (a stochastic lower
      /// bound), −log (1/K) Σ_k w_k for reverse chains (a stochastic upper bound).
      LogMarginal: Tensor
      /// The chains' log-weights [K,B]: log w_k for forward chains, log of the reverse weight (an estimate
      /// of 1/p(x)) for reverse chains.
      LogWeights: Tensor
      /// The effective sample size (Σ_k w_k)² / Σ_k w_k² per example [B], between 1 and K: near K when the
      /// weights are even, near 1 when one chain dominates the estimate.
      EffectiveSampleSize: Tensor
      /// The mean HMC acceptance probability per example [B], over its chains and transitions (1 when T = 1).
      AcceptanceRate: Tensor }

/// The schedule's β_0 = 0, …, β_T = 1 (T + 1 values, increasing, the ends exact).
let schedule (kind: Schedule) (steps: int) : float[] =
    if steps < 1 then raise (ArgumentOutOfRangeException("steps", steps, "At least one annealing step is required."))
    let ramp (t: int) =
        match kind with
        | Linear -> float t / float steps
        | Sigmoidal delta ->
            let sigmoid (u: float) = 1.0 / (1.0 + Math.Exp(-u))
            let lo, hi = sigmoid -delta, sigmoid delta
            (sigmoid (delta * (2.0 * float t / float steps - 1.0)) - lo) / (hi - lo)
    [| for t in 0 .. steps -> if t = 0 then 0.0 elif t = steps then 1.0 else ramp t |]

let private validate (config: Config) (samples: int) =
    Validate.positive "Steps" config.Steps
    Validate.positive "LeapfrogSteps" config.LeapfrogSteps
    Validate.positive "Chunk" config.Chunk
    Validate.positive "samples" samples
    Validate.positiveFinite "InitialStepSize" config.InitialStepSize
    match config.Schedule with
    | Sigmoidal delta -> Validate.positiveFinite "Sigmoidal delta" delta
    | Linear -> ()
    Hmc.validateAdaptation config.Adaptation

/// Anneals the chains z [K,b,D] of one chunk along `betas` (in the order given: increasing for forward,
/// decreasing for reverse chains) and returns their log-weights Σ_t (β_t − β_{t−1}) log p(x|z_{t−1}) [K,b]
/// and the mean acceptance probability per example [b]. Each step's temporaries are freed at its end; only
/// the chains, weights, step sizes and acceptance sums are carried.
let private anneal (generator: torch.Generator) (config: Config) (betas: float[]) (logLikelihood: Tensor -> Tensor -> Tensor) (z0: Tensor) (x: Tensor) =
    let examples = z0.shape.[1]
    let options (t: Tensor) = t.dtype, t.device
    let dtype, device = options z0
    let mutable z = z0
    let mutable logW = torch.zeros([| z0.shape.[0]; examples |], dtype = dtype, device = device)
    let mutable stepSize =
        use initial = Scalars.ofFloat config.InitialStepSize
        torch.full([| examples |], initial, dtype = dtype, device = device)
    let mutable acceptance = torch.zeros([| examples |], dtype = dtype, device = device)
    let steps = betas.Length - 1
    for t in 1 .. steps do
        let previous = z, logW, stepSize, acceptance
        use scope = torch.NewDisposeScope()
        use beta = Scalars.ofFloat betas.[t]
        use increment = Scalars.ofFloat (betas.[t] - betas.[t - 1])
        // log p(x|z) and its gradient at z_{t−1}: the weight update, and the start of the transition at β_t.
        let likelihood = Hmc.evaluate (fun z -> logLikelihood z x) z
        let logW' = logW +. likelihood.LogDensity * increment
        if t < steps then
            let target (z: Tensor) = Gaussian.logStandardNormal z +. logLikelihood z x * beta
            let start : Hmc.Point =
                { Position = z
                  LogDensity = Gaussian.logStandardNormal z +. likelihood.LogDensity * beta
                  Gradient = -z +. likelihood.Gradient * beta }
            let moved = Hmc.transition generator target stepSize config.LeapfrogSteps start
            z <- scope.MoveToOuter(moved.Point.Position)
            stepSize <- scope.MoveToOuter(Hmc.adaptStepSize config.Adaptation stepSize moved.AcceptanceProbability)
            acceptance <- scope.MoveToOuter(acceptance +. moved.AcceptanceProbability.mean([| 0L |]))
        logW <- scope.MoveToOuter(logW')
        // The previous state is this function's own (z0 included: the caller hands it over).
        let z1, w1, s1, a1 = previous
        for old, now in [ z1, z; w1, logW; s1, stepSize; a1, acceptance ] do
            if not (obj.ReferenceEquals(old, now)) then old.Dispose()
    let transitions = steps - 1
    let rate =
        if transitions = 0 then torch.ones_like(acceptance)
        else
            use count = Scalars.ofFloat (float transitions)
            acceptance / count
    z.Dispose()
    stepSize.Dispose()
    acceptance.Dispose()
    logW, rate

/// log (1/K) Σ_k w_k and (Σ_k w_k)² / Σ_k w_k² from log-weights [K,B], by log-sum-exp.
let private summarise (logWeights: Tensor) =
    use logCount = Scalars.ofFloat (Math.Log(float logWeights.shape.[0]))
    let logMean = logWeights.logsumexp(0L) - logCount
    let ess = torch.exp(logWeights.logsumexp(0L) * Scalars.two - (logWeights * Scalars.two).logsumexp(0L))
    logMean, ess

/// Runs the chains chunk by chunk: `start` gives each chunk's initial chains [K,b,D] from its rows.
let private chunked (generator: torch.Generator) (config: Config) (betas: float[]) (model: Estimators.LatentVariableModel) (x: Tensor) (start: int64 -> int64 -> Tensor) =
    use _ = torch.no_grad ()
    let rows = x.shape.[0]
    let parts =
        [| for first in 0L .. int64 config.Chunk .. rows - 1L do
               let count = min (int64 config.Chunk) (rows - first)
               use scope = torch.NewDisposeScope()
               let logW, rate = anneal generator config betas model.LogLikelihood (start first count) (x.narrow(0L, first, count))
               yield scope.MoveToOuter(logW), scope.MoveToOuter(rate) |]
    torch.cat([| for w, _ in parts -> w |], 1L), torch.cat([| for _, r in parts -> r |], 0L)

let private requireData (x: Tensor) =
    if isNull x then nullArg "x"
    if x.dim () <> 2L then invalidArg "x" $"x must be [B,P], one example per row, got shape %A{x.shape}."

/// Forward AIS: for each example, `samples` chains start from the prior, z_0 ~ N(0, I) (one draw [K,B,D] per
/// chunk from `generator`, on x's dtype and device), and are annealed to the posterior. The estimate
/// log (1/K) Σ_k w_k is a stochastic lower bound on log p(x) that tightens with more steps and chains. Only
/// model.LogLikelihood is used (z [K,b,D] → x [b,P] → [K,b]); the prior is N(0, I_latentSize). Runs under
/// no_grad: gradients are taken with respect to z only, and nothing accumulates in the decoder's .grad.
/// The step sizes adapt to the chains, which makes the estimate, strictly, not unbiased (as in Wu et al.);
/// Adaptation.Rate = 0 keeps InitialStepSize and the guarantee.
let forward (generator: torch.Generator) (config: Config) (samples: int) (latentSize: int) (model: Estimators.LatentVariableModel) (x: Tensor) : Estimate =
    validate config samples
    Validate.positive "latentSize" latentSize
    requireData x
    let start (_: int64) (count: int64) =
        torch.randn([| int64 samples; count; int64 latentSize |], dtype = x.dtype, device = x.device, generator = generator)
    let logW, rate = chunked generator config (schedule config.Schedule config.Steps) model x start
    let logMean, ess = summarise logW
    { LogMarginal = logMean; LogWeights = logW; EffectiveSampleSize = ess; AcceptanceRate = rate }

/// Reverse AIS (the reverse half of Grosse et al.'s BDMC): for data simulated from the model, x ~ p(x|z)
/// with z ~ p(z), the generating z [B,D] is an exact posterior sample of p(z|x). Every example's `samples`
/// chains start at its z and are annealed from β = 1 back to β = 0; the weight
/// Σ_t (β_{t−1} − β_t) log p(x|z_t) estimates 1/p(x) without bias, so −log (1/K) Σ_k w_k is a stochastic
/// upper bound on log p(x). The same schedule and transitions as forward, in reverse order.
let reverse (generator: torch.Generator) (config: Config) (samples: int) (model: Estimators.LatentVariableModel) (x: Tensor) (z: Tensor) : Estimate =
    validate config samples
    requireData x
    if isNull z then nullArg "z"
    if z.dim () <> 2L || z.shape.[0] <> x.shape.[0] then
        invalidArg "z" $"z must be [B,D] with one posterior sample per example of x (B = {x.shape.[0]}), got shape %A{z.shape}."
    let start (first: int64) (count: int64) =
        z.narrow(0L, first, count).``to``(x.dtype, x.device).unsqueeze(0L).expand(int64 samples, count, z.shape.[1]).contiguous()
    let logW, rate = chunked generator config (Array.rev (schedule config.Schedule config.Steps)) model x start
    let logMean, ess = summarise logW
    { LogMarginal = -logMean; LogWeights = logW; EffectiveSampleSize = ess; AcceptanceRate = rate }

/// Both halves of bidirectional Monte Carlo on simulated data: forward AIS (a stochastic lower bound on
/// log p(x)) and reverse AIS from the generating z (a stochastic upper bound). The gap between them bounds
/// the error of either on data like this; it shrinks to 0 as the schedule lengthens.
type Sandwich =
    { /// Forward chains from the prior: the lower bound.
      Forward: Estimate
      /// Reverse chains from the exact posterior sample: the upper bound.
      Reverse: Estimate }

/// Forward, then reverse AIS on simulated data (x [B,P], generated from z [B,D]), the same settings for both.
let bidirectional (generator: torch.Generator) (config: Config) (samples: int) (model: Estimators.LatentVariableModel) (x: Tensor) (z: Tensor) : Sandwich =
    if isNull z then nullArg "z"
    let lower = forward generator config samples (int z.shape.[int (z.dim ()) - 1]) model x
    { Forward = lower; Reverse = reverse generator config samples model x z }

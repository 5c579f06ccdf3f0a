/// The marginal likelihood estimator of Kingma & Welling (2013), Appendix D, with which the paper's Figure 3
/// was drawn. For a datapoint x and a model p(x, z) = p(z) p(x|z) with a low-dimensional z:
///   1. draw L samples z_l from the posterior p(z|x) by HMC, on ∇_z log p(z) + ∇_z log p(x|z);
///   2. fit a density q(z) to them;
///   3. draw L new samples z_l from the posterior and estimate
///      p(x) ≈ ( (1/L) Σ_l q(z_l) / (p(z_l) p(x|z_l)) )⁻¹,
/// because 1/p(x) = ∫ q(z) dz / p(x) = ∫ p(z|x) q(z) / p(x, z) dz. This is Gelfand & Dey's (1994)
/// reciprocal importance sampling. The paper leaves the density estimator open; we fit a Gaussian with a
/// full covariance by maximum likelihood (the sample mean and covariance), the simplest q that follows a
/// unimodal posterior's scale and correlations. The estimate of 1/p(x) is unbiased whenever q(z) > 0 only
/// where p(z|x) > 0 (and has finite variance when q's tails are lighter than the posterior's), so its
/// log, log p̂(x) = −log (1/L) Σ_l q(z_l)/p(x, z_l), is a stochastic upper bound on log p(x) (Jensen): the
/// other side of the importance-weighted and AIS estimates, which are stochastic lower bounds. The paper
/// states that the estimate is good in few latent dimensions (under 5) with enough samples.
module Research.Core.MarginalLikelihood

open System
open TorchSharp
open Research.Core.Interop
open Research.Core.Scalars.Operators

/// The settings of the estimator. See defaults.
type Config =
    { /// HMC chains per example. Each stage's L = Chains × Transitions samples come from all of them.
      Chains: int
      /// Prior draws per example from which the chains start: Chains of them resampled in proportion to
      /// p(x|z) (sampling–importance–resampling), so that every chain starts where the posterior has its
      /// mass; 1 starts the chains at plain prior draws.
      Candidates: int
      /// Transitions from the prior before any sample is kept, the step size adapting during them.
      WarmUp: int
      /// Transitions per stage after the warm-up, each chain giving one sample per transition: stage 1 (the
      /// fit of q) and stage 3 (the estimate) have Transitions each, the second continuing the first's chains.
      Transitions: int
      /// Leapfrog steps per HMC transition.
      LeapfrogSteps: int
      /// The step size every example's chains start the warm-up with.
      InitialStepSize: float
      /// How the step size (one per example) follows the mean acceptance of that example's chains during the
      /// warm-up; it is fixed afterwards, so that the sampling stages leave the posterior invariant.
      Adaptation: Hmc.Adaptation
      /// Examples sampled together: at most Chunk·Chains decoder rows per HMC evaluation, Chunk·Candidates
      /// for the start.
      Chunk: int }

/// 10 chains per example started from 200 prior draws, 100 warm-up transitions, 2 × 20 sampling transitions
/// (L = 200 per stage), 10 leapfrog steps per transition as in the paper's MCEM, ε₀ = 0.1 adapted towards 65%
/// acceptance (the optimum for HMC, Beskos et al. 2013) by e^(±0.05) a transition, 100 examples at a time.
/// The rate is 2.5 times Hmc.defaultAdaptation's so that the warm-up can move ε by a factor of up to
/// e^5 ≈ 150 either way: a decoder trained long has posteriors far narrower than the prior, and chains whose
/// step size is still too large stay where they started, which makes q too narrow and the estimate too high.
let defaults =
    { Chains = 10
      Candidates = 200
      WarmUp = 100
      Transitions = 20
      LeapfrogSteps = 10
      InitialStepSize = 0.1
      Adaptation = { Hmc.defaultAdaptation with Rate = 0.05 }
      Chunk = 100 }

/// What the estimator reports per example.
type Estimate =
    { /// log p̂(x) per example [B]: −log (1/L) Σ_l q(z_l) / p(x, z_l) over the stage-3 samples.
      LogMarginal: Tensor
      /// The effective sample size (Σ_l r_l)² / Σ_l r_l² of the ratios r_l = q(z_l)/p(x, z_l) per example [B],
      /// between 1 and L: near L when q follows the posterior closely, near 1 when one sample dominates.
      EffectiveSampleSize: Tensor
      /// The mean HMC acceptance probability per example [B] over the two sampling stages.
      AcceptanceRate: Tensor
      /// The step size each example reached in the warm-up [B].
      StepSize: Tensor }

/// Checks the settings (ArgumentException, or its ArgumentOutOfRangeException, naming the field).
let validate (config: Config) =
    Validate.positive "Chains" config.Chains
    Validate.positive "Candidates" config.Candidates
    Validate.positive "Transitions" config.Transitions
    Validate.positive "LeapfrogSteps" config.LeapfrogSteps
    Validate.positive "Chunk" config.Chunk
    if config.WarmUp < 0 then raise (ArgumentOutOfRangeException("WarmUp", config.WarmUp, "The number of warm-up transitions must be ≥ 0."))
    Validate.positiveFinite "InitialStepSize" config.InitialStepSize
    Hmc.validateAdaptation config.Adaptation
    // A full covariance in D dimensions is determined only by more than D samples.
    if config.Chains * config.Transitions < 2 then
        invalidArg "config" $"Chains × Transitions = {config.Chains * config.Transitions}: at least 2 samples per stage are needed to fit q."

/// The Gaussian fitted by maximum likelihood to samples z [L,B,D] (each example's own): its mean [B,D] and
/// the Cholesky factor [B,D,D] of its covariance (1/L) Σ_l (z_l − μ)(z_l − μ)ᵀ, in float64. A jitter of
/// 10⁻¹⁰ on the diagonal keeps the factor defined when chains have not moved (repeated samples); it is far
/// below any posterior variance a decoder in float32 resolves.
let fitGaussian (samples: Tensor) : Tensor * Tensor =
    let z = samples.to_type(torch.float64)
    let count, d = z.shape.[0], z.shape.[2]
    let mean = z.mean([| 0L |])
    let centred = (z - mean).permute(1L, 0L, 2L) // [B,L,D]
    use samplesS = Scalars.ofFloat (float count)
    use jitterS = Scalars.ofFloat 1e-10
    let covariance = centred.transpose(1L, 2L).matmul(centred) / samplesS
    let jitter = torch.eye(d, dtype = torch.float64, device = z.device) * jitterS
    mean, torch.linalg.cholesky(covariance +. jitter)

/// log N(z; μ, L Lᵀ) of z [S,B,D] under each example's Gaussian (μ [B,D], Cholesky factor [B,D,D]), [S,B], float64.
let logGaussian (mean: Tensor) (cholesky: Tensor) (z: Tensor) : Tensor =
    let d = z.shape.[2]
    let centred = (z.to_type(torch.float64) - mean).permute(1L, 2L, 0L) // [B,D,S]
    let solved = torch.linalg.solve_triangular(cholesky, centred, upper = false) // L⁻¹ (z − μ)
    let logDet = torch.diagonal(cholesky, 0L, -2L, -1L).log().sum(-1L) // ½ log |Σ| [B]
    let quadratic = (solved * solved).sum(1L).T // [S,B]
    use constant = Scalars.ofFloat (float d * Math.Log(2.0 * Math.PI))
    (plus constant quadratic) * Scalars.minusHalf - logDet

/// `transitions` HMC transitions with a fixed step size from `start`, keeping every position (and its
/// log-density) along the way: the chains' last point, the positions [transitions·C,b,D], the log-densities
/// [transitions·C,b] and the summed acceptance probabilities per example [b].
let private sample (generator: torch.Generator) (target: Tensor -> Tensor) (stepSize: Tensor) (steps: int) (transitions: int) (start: Hmc.Point) =
    let positions, densities = ResizeArray<Tensor>(), ResizeArray<Tensor>()
    let mutable point = start
    let mutable acceptance = torch.zeros_like(stepSize)
    for _ in 1 .. transitions do
        let t = Hmc.transition generator target stepSize steps point
        positions.Add t.Point.Position
        densities.Add t.Point.LogDensity
        acceptance <- acceptance +. t.AcceptanceProbability.mean([| 0L |])
        point <- t.Point
    point, torch.cat(positions.ToArray(), 0L), torch.cat(densities.ToArray(), 0L), acceptance

/// The chains' start [C,b,D] for a chunk x [b,P]: `candidates` prior draws per example, of which `chains` are
/// drawn with replacement in proportion to p(x|z). A chain that started in a region of negligible posterior
/// mass and had not left it would dominate the estimate (its samples have a small p(x, z) and a large
/// ratio q(z)/p(x, z)); resampling starts them all near the posterior's mass, and HMC then leaves the
/// posterior invariant whatever the start.
let private start (generator: torch.Generator) (chains: int) (candidates: int) (latentSize: int) (logLikelihood: Tensor -> Tensor -> Tensor) (x: Tensor) =
    let count = x.shape.[0]
    let draw (n: int) = torch.randn([| int64 n; count; int64 latentSize |], dtype = x.dtype, device = x.device, generator = generator)
    if candidates = 1 then draw chains
    else
        let z = draw candidates
        let logW = logLikelihood z x // [M,b]
        let probabilities = logW.T.to_type(torch.float64).softmax(1L) // [b,M]
        let picked = torch.multinomial(probabilities, chains, replacement = true, generator = generator) // [b,C]
        use first = Scalars.ofInt 0L
        use countS = Scalars.ofInt count
        use step = Scalars.ofInt 1L
        let rows = torch.arange(first, countS, step, device = x.device).unsqueeze(1L).expand(count, int64 chains)
        // z [M,b,D] at (picked, row) → [b,C,D] → [C,b,D].
        z.permute(1L, 0L, 2L).index(rows, picked).permute(1L, 0L, 2L).contiguous()

/// The three stages on the chains z0 [C,b,D] of one chunk of examples x [b,P].
let private estimateChunk (generator: torch.Generator) (config: Config) (logLikelihood: Tensor -> Tensor -> Tensor) (z0: Tensor) (x: Tensor) =
    // log p(x, z) = log p(z) + log p(x|z): the unnormalised posterior, whose gradient HMC follows.
    let target (z: Tensor) = Gaussian.logStandardNormal z +. logLikelihood z x
    let mutable point = Hmc.evaluate target z0
    let mutable stepSize =
        use initial = Scalars.ofFloat config.InitialStepSize
        torch.full([| x.shape.[0] |], initial, dtype = z0.dtype, device = z0.device)
    for _ in 1 .. config.WarmUp do
        // Each warm-up transition's temporaries go at once: only the chains and the step sizes are kept.
        use scope = torch.NewDisposeScope()
        let t = Hmc.transition generator target stepSize config.LeapfrogSteps point
        stepSize <- scope.MoveToOuter(Hmc.adaptStepSize config.Adaptation stepSize t.AcceptanceProbability)
        point <- { Position = scope.MoveToOuter(t.Point.Position)
                   LogDensity = scope.MoveToOuter(t.Point.LogDensity)
                   Gradient = scope.MoveToOuter(t.Point.Gradient) }
    // Stage 1: samples to fit q to.
    let mean, cholesky, point, accepted1 =
        use scope = torch.NewDisposeScope()
        let last, fitted, _, accepted = sample generator target stepSize config.LeapfrogSteps config.Transitions point
        let mean, cholesky = fitGaussian fitted
        scope.MoveToOuter(mean), scope.MoveToOuter(cholesky),
        ({ Position = scope.MoveToOuter(last.Position)
           LogDensity = scope.MoveToOuter(last.LogDensity)
           Gradient = scope.MoveToOuter(last.Gradient) } : Hmc.Point),
        scope.MoveToOuter(accepted)
    // Stage 3: fresh samples from the same chains; the Point's log-density is log p(x, z_l) already.
    use scope = torch.NewDisposeScope()
    let _, fresh, logJoint, accepted3 = sample generator target stepSize config.LeapfrogSteps config.Transitions point
    let logRatio = logGaussian mean cholesky fresh - logJoint.to_type(torch.float64) // log q(z_l) − log p(x, z_l) [L,b]
    use logCount = Scalars.ofFloat (Math.Log(float logRatio.shape.[0]))
    use transitions = Scalars.ofFloat (float (2 * config.Transitions))
    let logMarginal = -(logRatio.logsumexp(0L) - logCount)
    let ess = torch.exp(logRatio.logsumexp(0L) * Scalars.two - (logRatio * Scalars.two).logsumexp(0L))
    let rate = (accepted1 +. accepted3).to_type(torch.float64) / transitions
    scope.MoveToOuter(logMarginal), scope.MoveToOuter(ess), scope.MoveToOuter(rate), scope.MoveToOuter(stepSize.to_type(torch.float64))

/// The Appendix D estimate of log p(x) for each row of x [B,P] (float64 results [B]). Every example's
/// `Chains` chains start from prior draws z ~ N(0, I_latentSize) (resampled from `Candidates` of them; all
/// randomness from `generator`, on x's dtype and device), so the estimate does not use the encoder
/// (model.Encode is never called); only model.LogLikelihood (z [C,b,D] → x [b,P] → [C,b]) is. Runs under no_grad: gradients are taken with
/// respect to z only, and nothing accumulates in the decoder's .grad. Settings are checked before any work
/// (ArgumentException).
let estimate (generator: torch.Generator) (config: Config) (latentSize: int) (model: Estimators.LatentVariableModel) (x: Tensor) : Estimate =
    validate config
    Validate.positive "latentSize" latentSize
    if isNull x then nullArg "x"
    if x.dim () <> 2L then invalidArg "x" $"x must be [B,P], one example per row, got shape %A{x.shape}."
    use _ = torch.no_grad ()
    let rows = x.shape.[0]
    let parts =
        [| for first in 0L .. int64 config.Chunk .. rows - 1L do
               use scope = torch.NewDisposeScope()
               let count = min (int64 config.Chunk) (rows - first)
               let rows = x.narrow(0L, first, count)
               let z0 = start generator config.Chains config.Candidates latentSize model.LogLikelihood rows
               let l, e, a, s = estimateChunk generator config model.LogLikelihood z0 rows
               yield scope.MoveToOuter(l), scope.MoveToOuter(e), scope.MoveToOuter(a), scope.MoveToOuter(s) |]
    let column f = torch.cat(Array.map f parts, 0L)
    let result =
        { LogMarginal = column (fun (l, _, _, _) -> l)
          EffectiveSampleSize = column (fun (_, e, _, _) -> e)
          AcceptanceRate = column (fun (_, _, a, _) -> a)
          StepSize = column (fun (_, _, _, s) -> s) }
    for l, e, a, s in parts do
        for t in [ l; e; a; s ] do t.Dispose()
    result

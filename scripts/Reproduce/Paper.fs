/// Writes paper/paper.md: the text around the generated figures and tables. Every number in it comes
/// from the results of this run; the prose states only what those numbers show.
module Reproduce.Paper

open System
open System.IO

/// The facts the prose states, computed from the Figure 2 points.
let private fig2Claims (points: Fig2Bound.Point list) =
    let byLatent = points |> List.groupBy (fun p -> p.Latent)
    let aevbAbove =
        [ for latent, ps in byLatent ->
            let at alg = ps |> List.filter (fun p -> p.Algorithm = alg) |> List.map (fun p -> p.Samples, p.Test) |> Map.ofList
            let aevb, ws = at "AEVB", at "Wake-sleep"
            let shared = aevb |> Map.toList |> List.filter (fun (s, _) -> ws.ContainsKey s)
            latent, shared |> List.forall (fun (s, v) -> v > ws.[s]), shared.Length ]
    let final alg latent =
        points |> List.filter (fun p -> p.Algorithm = alg && p.Latent = latent) |> List.maxBy (fun p -> p.Samples)
    let lines =
        [ for latent, above, count in aevbAbove ->
            let a, w = final "AEVB" latent, final "Wake-sleep" latent
            let verdict = if above then "above wake-sleep's at every budget measured" else "not above wake-sleep's at every budget measured"
            $"- N_z = {latent}: AEVB's test bound is {verdict} ({count} in all); at the end, AEVB {a.Test:F2} nats (train {a.Train:F2}), wake-sleep {w.Test:F2} (train {w.Train:F2})." ]
    let largest = points |> List.map (fun p -> p.Latent) |> List.max
    let big, gapBig = final "AEVB" largest, (final "AEVB" largest).Train - (final "AEVB" largest).Test
    let small = final "AEVB" (points |> List.map (fun p -> p.Latent) |> List.filter (fun l -> l < largest) |> List.max)
    let gapSmall = small.Train - small.Test
    let overfit =
        $"With N_z = {largest} the final AEVB bound is {big.Test:F2} nats on the test set and {big.Train:F2} on the training subset (gap {gapBig:F2}); with N_z = {small.Latent} it is {small.Test:F2} and {small.Train:F2} (gap {gapSmall:F2})."
    String.Join("\n", lines), overfit

/// What the latent sweep says about the linear AE against PCA, from results/latent_sweep.csv and the PCA
/// eigenvalues in results/pca_explained_variance.csv: per latent size, the MSE ratio, the largest principal
/// angle, and how well separated the eigenvalues at the cut are.
let private sweepClaims (results: string) =
    let inv = Globalization.CultureInfo.InvariantCulture
    let rows (file: string) = File.ReadAllLines(Path.Combine(results, file)) |> Array.skip 1 |> Array.map (fun l -> l.Split ',')
    let eigen = rows "pca_explained_variance.csv" |> Array.map (fun c -> float (Double.Parse(c.[1], inv)))
    let sweep =
        rows "latent_sweep.csv"
        |> Array.map (fun c -> int c.[0], Double.Parse(c.[1], inv), Double.Parse(c.[2], inv), Double.Parse(c.[3], inv))
    let line (k, pca, linear, angle) =
        let gap =
            if k < eigen.Length then String.Format(inv, "; λ_{0}/λ_{1} = {2:F3}", k, k + 1, eigen.[k - 1] / eigen.[k])
            else ""
        String.Format(inv, "- N_z = {0}: linear AE MSE / PCA MSE = {1:F4}, largest principal angle {2:F1}°{3}.", k, linear / pca, angle, gap)
    let worst = sweep |> Array.map (fun (_, p, l, _) -> l / p) |> Array.max
    let closeAngles = sweep |> Array.filter (fun (_, _, _, a) -> a <= 5.0) |> Array.map (fun (k, _, _, _) -> string k)
    let farAngles = sweep |> Array.filter (fun (_, _, _, a) -> a > 5.0) |> Array.map (fun (k, _, _, _) -> string k)
    let closeList, farList = String.Join(", ", closeAngles), String.Join(", ", farAngles)
    let summary =
        String.Format(inv, "The linear AE's test error is within {0:F1}% of PCA's at every latent size. ", 100.0 * (worst - 1.0))
        + (if closeAngles.Length > 0 then $"Its subspace is within 5° of PCA's at N_z = {closeList}" else "Its subspace is never within 5° of PCA's")
        + (if farAngles.Length > 0 then
               $", but not at N_z = {farList}. The squared error changes only to second order when the subspace "
               + "turns towards directions of similar variance, so a model within a few percent of PCA's error can "
               + "still differ from it by a large angle; Baldi & Hornik's result is about the optimum, and after a fixed number of "
               + "epochs the angle measures how far training is from it along these weakly determined directions. The per-size figures:"
           else ", as Baldi & Hornik's result predicts for the optimum. The per-size figures:")
    let active =
        rows "latent_sweep.csv"
        |> Array.map (fun c -> $"{c.[8]} of {c.[0]}")
    let sizes = String.Join(", ", sweep |> Array.map (fun (k, _, _, _) -> string k))
    let unused = rows "latent_sweep.csv" |> Array.filter (fun c -> int c.[8] < int c.[0]) |> Array.map (fun c -> c.[0])
    let unusedList = String.Join(", ", unused)
    let activeText =
        "\n\nThe VAE's active units (latent dimensions whose posterior mean varies over the test set by more than "
        + $"{LatentSweep.activeThreshold}, Burda et al.'s criterion) at N_z = {sizes}: "
        + String.Join(", ", active) + "."
        + (if unused.Length = 0 then " Every latent dimension is active at every size."
           else $" At N_z = {unusedList} some dimensions are inactive: their posterior stays at the prior, so the VAE uses fewer dimensions than it is given.")
    summary + "\n\n" + String.Join("\n", sweep |> Array.map line) + activeText

/// The paper's Figure 2 end values for AEVB at 10^8 samples, read approximately from its plot (nats, low–high);
/// for wake-sleep the paper's plot says only that it stays below AEVB.
let private paperFig2 = Map.ofList [ 3, (-130.0, -125.0); 5, (-115.0, -110.0); 10, (-105.0, -100.0); 20, (-100.0, -95.0); 200, (-100.0, -95.0) ]

/// Where the curves that reached 10^8 samples stand against the paper's end values, and what the points
/// say about why: the train–test gap, and how far the test bound fell from its best (overfitting), or a
/// train bound short of the paper's as well (less reached by the optimisation at the same budget).
let private paperBudgetComparison (curves: ((int * string) * Fig2PaperBudget.Point list) list) (binarisationChecked: bool) =
    let finished =
        [ for (latent, algorithm), ps in curves do
            let last = ps |> List.maxBy (fun p -> p.Epoch)
            if last.Samples >= 100_000_000L then yield latent, algorithm, ps, last ]
    if finished.IsEmpty then ""
    else
        let against (lo, hi) (v: float) =
            if v < lo then $"{lo - v:F1} nats below" elif v > hi then $"{v - hi:F1} nats above" else "inside"
        let lines =
            [ for latent, algorithm, ps, last in finished ->
                let range = paperFig2.[latent]
                let lo, hi = range
                let best = ps |> List.maxBy (fun p -> p.Test)
                let fell = best.Test - last.Test
                let peak =
                    if fell > 0.05 then $"the test bound was best at {Fig2PaperBudget.samplesText best.Samples} samples ({best.Test:F2}) and fell {fell:F2} nats after it"
                    else "the test bound was still rising at the end"
                let opens =
                    match ps |> List.sortBy (fun p -> p.Epoch) |> List.tryFind (fun p -> p.Train - p.Test > 1.0) with
                    | Some p -> $"; the gap first exceeds 1 nat at {Fig2PaperBudget.samplesText p.Samples} samples"
                    | None -> ""
                let versus =
                    if algorithm = "AEVB" then $"test {last.Test:F2}, {against range last.Test} the paper's {lo:F0} … {hi:F0}; train {last.Train:F2}, {against range last.Train}"
                    else $"test {last.Test:F2}, train {last.Train:F2} (the paper reads only as below AEVB for wake-sleep)"
                $"- N_z = {latent}, {algorithm}: {versus}; train − test {last.Train - last.Test:F2} nats{opens}; {peak}." ]
        let wsFinal = finished |> List.filter (fun (_, a, _, _) -> a = "Wake-sleep")
        let aevbFinal = finished |> List.filter (fun (_, a, _, _) -> a = "AEVB")
        let pairs =
            [ for l, _, _, a in aevbFinal do
                for l', _, _, w in wsFinal do
                    if l = l' then yield l, a.Test > w.Test ]
        let order =
            if pairs.IsEmpty then ""
            elif pairs |> List.forall snd then
                " Wake-sleep ends below AEVB at every N_z where both reached 10⁸ (" + String.Join(", ", pairs |> List.map (fst >> string)) + "), as in the paper."
            else
                " Wake-sleep does not end below AEVB at N_z = " + String.Join(", ", pairs |> List.filter (snd >> not) |> List.map (fst >> string)) + ", unlike the paper."
        // The paper's curves show test ≈ train: every AEVB curve whose gap is above 1 nat differs from it there,
        // and overfits in the strict sense where the test bound also fell from its best while training went on.
        let latents (cs: (int * string * Fig2PaperBudget.Point list * Fig2PaperBudget.Point) list) =
            String.Join(", ", cs |> List.map (fun (l, _, _, _) -> string l))
        let wide = aevbFinal |> List.filter (fun (_, _, _, last) -> last.Train - last.Test > 1.0)
        let overfits = wide |> List.filter (fun (_, _, ps, last) -> (ps |> List.map (fun p -> p.Test) |> List.max) - last.Test > 0.05)
        let short = aevbFinal |> List.filter (fun (l, _, _, last) -> last.Train < fst paperFig2.[l]) |> List.map (fun (l, a, _, _) -> $"{a} N_z = {l}")
        let why =
            (if wide.IsEmpty then ""
             else $" The paper's curves show test ≈ train; ours end with train − test above 1 nat for AEVB at N_z = {latents wide}.")
            + (if overfits.IsEmpty then ""
               else
                   $" At N_z = {latents overfits} the model overfits the training set (the train bound kept rising after the test bound "
                   + "had passed its best), which the paper's weight decay (the N(0, I) prior, 1/N per example, as used here) does not prevent in our runs.")
            + (if short.IsEmpty then ""
               else
                   let shortList = String.Join(", ", short)
                   $" Where the train bound is below the paper's range too ({shortList}), the optimisation has reached less than the paper's in the same number of samples, not only generalised worse.")
            + " Our models, initialisation, optimiser, step-size choice and weight decay are the paper's as its text gives them (Method, above)"
            + (if binarisationChecked then "; its text does not say whether the images were binarised, which the check below tests."
               else "; we have not found a setting that explains the difference, and the paper's text gives no further detail to compare with.")
            + " The paper's values are read approximately from its plot."
        let curves = 2 * Fig2Bound.latentSizes.Length
        let reached = if finished.Length = curves then "all curves there" else $"{finished.Length} of {curves} curves there so far"
        $"Against the paper's Figure 2 at 10⁸ samples ({reached}):\n\n"
        + String.Join("\n", lines) + "\n\n" + (order + why).TrimStart()

/// The section on Figure 2 at the paper's budget, from results/fig2_bound_paper_budget.csv when a
/// `reproduce --paper-budget` run has written it (possibly part of the way); empty otherwise.
let private paperBudgetSection (cache: string) (results: string) =
    let file = Path.Combine(results, "fig2_bound_paper_budget.csv")
    if not (File.Exists file) then ""
    else
        let points = Fig2PaperBudget.read file
        let curves = points |> List.groupBy (fun p -> p.Latent, p.Algorithm) |> List.sortBy fst
        // A curve's last point, where the curve has started.
        let final latent alg =
            curves |> List.tryFind (fun ((l, a), _) -> l = latent && a = alg) |> Option.map (fun (_, ps) -> ps |> List.maxBy (fun p -> p.Epoch))
        let rows =
            [ for (latent, algorithm), ps in curves ->
                let last = ps |> List.maxBy (fun p -> p.Epoch)
                // Memory after the first ten epochs (the warm-up, each of them evaluated): first → latest, and
                // the most. The latest says whether it stayed flat; the most, how far it went on the way.
                let settled = ps |> List.filter (fun p -> p.Epoch > 10) |> List.sortBy (fun p -> p.Epoch)
                let range (value: Fig2PaperBudget.Point -> float) =
                    match settled |> List.filter (fun p -> not (Double.IsNaN (value p))) with
                    | [] -> "—"
                    | measured ->
                        let first = value measured.Head
                        let latest = value (List.last measured)
                        let most = measured |> List.map value |> List.max
                        let change = 100.0 * (latest / first - 1.0)
                        let rise = 100.0 * (most / first - 1.0)
                        let sign = if change >= 0.0 then "+" else "−"
                        $"{first:F0} → {latest:F0} ({sign}{abs change:F1}%%); most {most:F0} (+{rise:F1}%%)"
                // The CPU clock, where the points have it: the wall clock counts pauses and other jobs.
                let cpuPerEpoch = ps |> List.filter (fun p -> p.Epoch > 1 && not (Double.IsNaN p.CpuSecondsPerEpoch)) |> List.map (fun p -> p.CpuSecondsPerEpoch) |> List.sort
                let median = if cpuPerEpoch.IsEmpty then nan else cpuPerEpoch.[cpuPerEpoch.Length / 2]
                let lo, hi = paperFig2.[latent]
                let aevbEnd = final latent "AEVB"
                let paperText, inRange =
                    if last.Samples < 100_000_000L then (if algorithm = "AEVB" then $"{lo:F0} … {hi:F0}" else "below AEVB"), "not yet at 10⁸"
                    elif algorithm = "AEVB" then $"{lo:F0} … {hi:F0}", (if last.Test >= lo && last.Test <= hi then "inside" elif last.Test > hi then "above" else "below")
                    else
                        match aevbEnd with
                        | Some a when a.Samples >= 100_000_000L -> "below AEVB", (if last.Test < a.Test then "below our AEVB" else "above our AEVB")
                        | _ -> "below AEVB", "our AEVB not yet at 10⁸"
                $"| {latent} | {algorithm} | {Fig2PaperBudget.samplesText last.Samples} | {last.Train:F2} | {last.Test:F2} | {paperText} | {inRange} | {median:F2} | {range (fun p -> p.RssMiB)} | {range (fun p -> p.HeapMiB)} | {last.ElapsedSeconds / 3600.0:F2} |" ]
        // The least any curve has reached, and how many of the figure's curves have started at all.
        let reached = curves |> List.map (fun (_, ps) -> ps |> List.map (fun p -> p.Samples) |> List.max) |> List.min
        let planned = 2 * Fig2Bound.latentSizes.Length
        let complete = curves |> List.forall (fun (_, ps) -> ps |> List.exists (fun p -> p.Samples >= 100_000_000L))
        let aevbAbove =
            [ for latent in curves |> List.map (fst >> fst) |> List.distinct do
                match final latent "AEVB", final latent "Wake-sleep" with
                | Some a, Some w when a.Epoch = w.Epoch ->
                    let above = if a.Test > w.Test then "AEVB above" else "wake-sleep above"
                    yield $"N_z = {latent}: AEVB {a.Test:F2} against wake-sleep {w.Test:F2} at {Fig2PaperBudget.samplesText a.Samples} samples ({above})"
                | _ -> () ]
        let comparison = if aevbAbove.IsEmpty then "" else String.Join("; ", aevbAbove) + "."
        let binarisation = Fig2Binarised.read results
        let versusPaper = paperBudgetComparison curves (not binarisation.IsEmpty)
        // Which commit trained which epochs, where the run recorded it (each curve's sessions.csv).
        let code =
            [ for (latent, algorithm), _ in curves do
                let algo = if algorithm = "AEVB" then PaperModels.Aevb else PaperModels.WakeSleep
                let starts =
                    Fig2PaperBudget.sessions cache algo latent
                    |> List.fold (fun acc (epoch, commit) -> match acc with (_, c) :: _ when c = commit -> acc | _ -> (epoch, commit) :: acc) []
                    |> List.rev
                if not starts.IsEmpty then
                    let parts = String.Join("; ", starts |> List.map (fun (e, c) -> $"from epoch {e}, `{c}`"))
                    yield $"{algorithm} N_z = {latent}: {parts}" ]
        let codeText =
            if code.IsEmpty then ""
            else "The code that trained each curve, as the run has recorded it since 2026-12-02 (epochs before a curve's first entry predate the record): "
                 + String.Join(". ", code) + "."
        let status =
            if complete then "Every curve reached the paper's 10⁸ training samples."
            else $"The run is not finished: it is resumable, and {curves.Length} of its {planned} curves have started and each of those has reached at least {Fig2PaperBudget.samplesText reached} samples so far (the table gives each curve's own budget); rerun `dotnet fsi build.fsx reproduce --paper-budget` to continue."
        $"""### Figure 2 at the paper's budget

![Figure 2 at the paper's budget](figures/fig2_bound_paper_budget.png)

Trained by `dotnet fsi build.fsx reproduce --paper-budget`: the same models and optimiser as above, each curve
to 1667 epochs of 60000 images (1.0·10⁸ samples), through resumable training (a run checkpoint after every
epoch, so the run survives being stopped). {status} The train bound is measured on the first
{Fig2Bound.scoredRows} training images, the test bound on the test set, at about ten epochs per decade of samples.
The paper's end values are read approximately from its Figure 2. The cost column is the CPU time per epoch
of the thread that trains the curve (each curve trains on one thread, {Fig2PaperBudget.workers} curves at a time on this machine; evaluations
included; "nan" where the points predate that column); the wall-clock hours include the time the run was
paused or shared the machine with other work. Memory is the whole process's (two curves train in it), from each curve's first point after
its first ten epochs to its latest, and the most it reached on the way: the RSS, which also counts what malloc keeps free for reuse and so
moves when the pair of curves in flight changes, and the C heap in use (every tensor's storage), where a leak would show.

| N_z | algorithm | samples | train bound | test bound | paper at 10⁸ (approx.) | ours vs the paper | CPU s/epoch (median, one thread) | RSS after epoch 10: first → latest; most (MiB) | heap in use after epoch 10: first → latest; most (MiB) | wall-clock hours (pauses included) |
|---:|---|---:|---:|---:|---|---|---:|---|---|---:|
{String.Join("\n", rows)}

{comparison}

{versusPaper}

{Fig2Binarised.paragraph binarisation}

{codeText}
"""

/// Writes `paper`/paper.md from the results under `paper` and the paper-budget run's record under `cache`.
let write (paper: string) (cache: string) (command: string) (fig2Points: Fig2Bound.Point list) (fig2: Fig2Bound.Budget) (fig3Sizes: string) (fig3Budget: int64) (fig3K: int) (trainSize: int64) (testSize: int64) =
    let table name = File.ReadAllText(Path.Combine(paper, "results", name)).TrimEnd()
    let claims, overfit = fig2Claims fig2Points
    let sweep = sweepClaims (Path.Combine(paper, "results"))
    let linearVae = if File.Exists(Path.Combine(paper, "results", "linear_vae_ppca.md")) then table "linear_vae_ppca.md" else ""
    let iwaeIntro =
        "### Beyond the paper: the IWAE table\n\nBurda et al. (2016)'s one-stochastic-layer MNIST model, trained as a VAE and as an importance-weighted "
        + "autoencoder by `dotnet fsi build.fsx reproduce --iwae-table` (not part of the default run), beside their published "
        + "numbers and beside PyTorch at the same budget.\n\n"
    let iwae = if File.Exists(Path.Combine(paper, "results", "iwae_table.md")) then iwaeIntro + table "iwae_table.md" + "\n" else ""
    let date = DateTime.UtcNow.ToString "yyyy-MM-dd"
    let text = $"""# Auto-Encoding Variational Bayes, reproduced in .NET

*Generated by `{command}` at commit `{Commit.current ()}` on {date}. Do not edit by hand: every
number, table and figure below comes from the results and figures in this folder, each written by the
command its section names (`dotnet fsi build.fsx reproduce` unless it says otherwise).*

## Abstract

We reproduce the MNIST experiments of Kingma & Welling, *Auto-Encoding Variational Bayes* (2013), with the
Research library (an F# core on TorchSharp / libtorch and a C# facade), and compare the variational
autoencoder with PCA, a linear autoencoder and a deep autoencoder at several latent sizes.

## Method

A VAE has a recognition model $q_\phi(z \mid x) = \mathcal N(\mu_\phi(x), \operatorname{{diag}} \sigma^2_\phi(x))$, a prior
$p(z) = \mathcal N(0, I)$ and a decoder $p_\theta(x \mid z)$ (Bernoulli for MNIST). It maximises the evidence lower bound

$$\mathcal L(\theta, \phi; x) = \mathbb E_{{q_\phi(z \mid x)}}[\log p_\theta(x \mid z)] - D_{{KL}}(q_\phi(z \mid x) \,\|\, p(z)) \le \log p_\theta(x).$$

With the reparameterisation $z = \mu + \sigma \odot \varepsilon$, $\varepsilon \sim \mathcal N(0, I)$ (`Gaussian.sampleWith`), the
SGVB estimator A (`Estimators.sgvbA`) averages $\log p_\theta(x, z_l) - \log q_\phi(z_l \mid x)$ over $L$ samples, and
estimator B (`Estimators.sgvbB`) uses the closed form
$D_{{KL}} = \tfrac12 \sum_j (\sigma_j^2 + \mu_j^2 - \log \sigma_j^2 - 1)$ (`Gaussian.klToStandardNormal`). The marginal
likelihood is estimated by importance sampling with the encoder as proposal,
$\log \tfrac1K \sum_k p_\theta(x, z_k) / q_\phi(z_k \mid x)$ (`Estimators.importanceWeighted`, log-sum-exp).
Wake-sleep (`WakeSleep.fit`) trains the same networks: the decoder on $\log p_\theta(x, z)$ with $z \sim q_\phi(z \mid x)$,
the encoder on $\log q_\phi(z \mid x')$ with fantasies $z \sim p(z)$, $x' \sim p_\theta(x \mid z)$.

Paper settings (Figures 2 and 3): one hidden layer of tanh units, weights from $\mathcal N(0, 0.01^2)$, Adagrad with
the step size chosen from {{0.01, 0.02, 0.1}} on the first pass over {fig2.SearchRows} images, minibatches of 100, $L = 1$,
and weight decay $1/N$ (the $\mathcal N(0, I)$ prior on the parameters).

## Experiments and results

### Figure 2: lower bound against training samples

![Figure 2](figures/fig2_bound.png)

Each model was trained for {fig2.Epochs} epochs of {trainSize} images; the train bound is measured on the first {min Fig2Bound.scoredRows trainSize}
training images, the test bound on the {testSize} test images, after every epoch.

{claims}

{overfit}

{paperBudgetSection cache (Path.Combine(paper, "results"))}
### Figure 3: marginal log-likelihood against training samples

![Figure 3](figures/fig3_marginal.png)

N_z = {Fig3Marginal.latent} and {Fig3Marginal.hidden} hidden units, trained on the first {fig3Sizes} images by AEVB and wake-sleep for {fig3Budget}
samples, and by Monte Carlo EM (`Mcem.fit`) for {min fig3Budget Fig3Marginal.mcemBudget}: for each minibatch, one HMC transition of
{Research.Core.Mcem.defaults.LeapfrogSteps} leapfrog steps moves persistent per-image chains (started from the prior) with the step size adapted towards
{Research.Core.Mcem.defaults.Adaptation.TargetAcceptance * 100.0:F0}%% acceptance, then {Research.Core.Mcem.defaults.WeightUpdates} Adagrad updates of the decoder on $\log p_\theta(x, z)$ at
those samples; the encoder is not used. The plotted marginal likelihood is the paper's Appendix D estimator
(`MarginalLikelihood.estimate`): {Fig3Marginal.estimator.Chains} HMC chains per image, started from
{Fig3Marginal.estimator.Candidates} prior draws resampled in proportion to $p_\theta(x \mid z)$, {Fig3Marginal.estimator.WarmUp} warm-up transitions,
a full-covariance Gaussian $q(z)$ fitted to $L = {Fig3Marginal.estimator.Chains * Fig3Marginal.estimator.Transitions}$ posterior samples, and
$1/p_\theta(x) \approx \tfrac1L \sum_l q(z_l) / p_\theta(x, z_l)$ on $L$ fresh ones, on the first {Fig3Marginal.estimatedRows} training and
{Fig3Marginal.estimatedRows} test images, after powers of ten of training samples and at the end of each curve. `results/fig3_marginal.csv`
also holds, at every point, the importance-weighted estimate with K = {fig3K} on 1000 images (columns `train_iw`,
`test_iw`; for MCEM, whose encoder is untrained, a loose lower bound).

{iwae}
### Figure 4: the learned manifold, and the test set in latent space

![Figure 4](figures/fig4_manifold.png)

![Latent codes](figures/fig4_latent.png)

### Figure 5: random samples

![Figure 5](figures/fig5_samples.png)

### PCA, linear AE, deep AE and VAE

{table "comparison.md"}

{linearVae}

{table "latent_sweep.md"}

{sweep}

![Latent sweep](figures/latent_sweep.png)

![Reconstructions](figures/reconstructions.png)

![2-D codes](figures/codes_2d.png)

![Interpolation](figures/interpolation.png)

![Perturbing a mean](figures/perturb_mean.png)

![Perturbing the spread](figures/perturb_variance.png)

## Differences from the paper and limitations

- Budget: the paper trained to $10^8$ samples; the default run here stops at the budgets printed above
  (`dotnet fsi build.fsx reproduce --paper-budget` runs Figure 2 to $10^8$).
- Figure 3: the Appendix D estimator runs with our own small settings (L = {Fig3Marginal.estimator.Chains * Fig3Marginal.estimator.Transitions} samples per stage, {Fig3Marginal.estimatedRows} images per set,
  fewer points than the IW estimate), and MCEM trains for at most {Fig3Marginal.mcemBudget} samples, to keep the figure within
  about 15 minutes; the Gaussian $q(z)$ and the resampled start of the chains are our choices (Appendix D leaves
  the density estimator open).
- The figure-4/5 and comparison models use ReLU networks and Adam (the PyTorch example's setting), not the paper's tanh
  and Adagrad.
- No Frey Face experiments: the data set is not obtainable here. The library reads its file
  (`FreyFace.load "frey_rawface.mat"`, through a MATLAB Level 5 reader, `MatFile`), tested on files the tests write.
- "N(0, 0.01)" is read as a standard deviation of 0.01.
"""
    let path = Path.Combine(paper, "paper.md")
    File.WriteAllText(path, text)
    path

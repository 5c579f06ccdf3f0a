/// The figures, ratios and target verdicts computed from the children's results, as Markdown.
module Bench.Analysis

open System
open System.Text
open System.Text.Json.Nodes
open Bench.Common
open Bench.Report

let markdown (newOnly: bool) (rows: int) (warmupSteps: int) (epochs: int) (iwSamples: int) (iwRows: int) (otherWait: string) (r: Results) (header: string list) =
    let sb = StringBuilder()
    let para (s: string) = sb.AppendLine(s).AppendLine() |> ignore
    para "# Benchmark: Research against PyTorch and scikit-learn"
    for h in header do para h
    let med key field = median (samples r key field)
    let sp digits key field = spread digits (samples r key field)
    let signed (digits: int) (x: float) = x.ToString((if digits = 0 then "+0;-0" else "+0." + String('0', digits) + ";-0." + String('0', digits)), inv)
    /// "a / b" of the medians, with the range of the per-repetition ratios (the pairs ran back to back).
    let ratio a b field =
        let xs, ys = samples r a field, samples r b field
        let m = med a field / med b field
        if xs.Length = ys.Length && xs.Length > 1 then
            let pr = List.map2 (/) xs ys
            $"{f 2 m}× [{f 2 (List.min pr)}–{f 2 (List.max pr)}]", m
        else $"{f 2 m}×", m
    let rowsOut = ResizeArray<string list>()
    let row cells = rowsOut.Add cells

    // sgemm peak (NaN when --only new did not measure it)
    let oursPeak, torchPeak = med "ours.sgemm" "gflops", med "torch.sgemm" "gflops"
    let peak = if Double.IsNaN oursPeak || Double.IsNaN torchPeak then nan else max oursPeak torchPeak
    let n = last r "ours.sgemm" |> Option.map (fun o -> int (num o "n")) |> Option.defaultValue 0
    if not newOnly then
        // sgemm peak
        let refRate = med "torch-refblas.sgemm" "gflops"
        let refN = last r "torch-refblas.sgemm" |> Option.map (fun o -> int (num o "n")) |> Option.defaultValue 0
        row [ $"sgemm {n}×{n}, best of 5 (GFLOP/s)"; sp 1 "ours.sgemm" "gflops"; sp 1 "torch.sgemm" "gflops"
              fst (ratio "ours.sgemm" "torch.sgemm" "gflops")
              $"machine peak taken as {f 1 peak}; the peer on Debian's reference BLAS: {f 1 refRate} (n = {refN})"; "—"; "" ]

        // Training epochs
        let epochRows name key layers target =
            let flops = mlpTrainFlops layers 1.0 * float rows
            let text, m = ratio $"ours.{key}" $"torch.{key}" "epoch_s"
            let oursRate = flops / med $"ours.{key}" "epoch_s" / 1e9
            let torchRate = flops / med $"torch.{key}" "epoch_s" / 1e9
            row [ $"{name} epoch, {rows} images, batch 128, Adam (s)"; sp 2 $"ours.{key}" "epoch_s"; sp 2 $"torch.{key}" "epoch_s"
                  text; $"{f 1 (flops / 1e9)} useful GFLOP per epoch; timed after an untimed pass of {warmupSteps} minibatches"
                  $"≤ {f 1 target}× PyTorch"; verdict (m <= target) ]
            let cold, _ = ratio $"ours.{key}" $"torch.{key}" "warmup_s"
            row [ $"{name}: the untimed first {warmupSteps} minibatches of each fresh process (s)"; sp 2 $"ours.{key}" "warmup_s"
                  sp 2 $"torch.{key}" "warmup_s"; cold
                  "what a first epoch pays once: .NET's tiered JIT compiling the step (ours), allocator and thread-pool start (both)"; "—"; "" ]
            oursRate, torchRate
        let vaeRate, vaeTorchRate = epochRows "VAE 784-400-20" "vae-epoch" vaeLayers 0.8
        row [ "VAE useful FLOP rate (GFLOP/s)"; f 1 vaeRate; f 1 vaeTorchRate; f 2 (vaeRate / vaeTorchRate) + "×"
              $"ours {f 0 (100.0 * vaeRate / peak)}%% of sgemm peak (PyTorch {f 0 (100.0 * vaeTorchRate / peak)}%%)"
              "≥ 50% of sgemm peak"; verdict (vaeRate >= 0.5 * peak) ]
        let aeRate, aeTorchRate = epochRows "Deep AE 784-256-64-20" "ae-epoch" aeLayers 0.8
        row [ "Deep AE useful FLOP rate (GFLOP/s)"; f 1 aeRate; f 1 aeTorchRate; f 2 (aeRate / aeTorchRate) + "×"
              $"ours {f 0 (100.0 * aeRate / peak)}%% of sgemm peak (PyTorch {f 0 (100.0 * aeTorchRate / peak)}%%)"; "—"; "" ]

        // PCA
        let oursEvr = last r "ours.pca" |> Option.map (fun o -> floats o["evr"])
        let solvers =
            match r.TryGetValue "sklearn.pca" with
            | true, xs when xs.Count > 0 ->
                let first = (xs.[0].["solvers"]).AsObject()
                let names = [ for KeyValue(k, _) in first -> k ]
                [ for name in names ->
                    let runs = [ for o in xs -> o["solvers"].[name].AsObject() ]
                    let available = runs |> List.forall (fun o -> o["available"].GetValue<bool>())
                    let seconds = if available then [ for o in runs -> num o "seconds" ] else []
                    let evr = if available then Some(floats (List.last runs).["evr"]) else None
                    name, available, seconds, evr ]
            | _ -> []
        let oursPca = samples r "ours.pca" "seconds"
        let oursPcaMed = median oursPca
        for name, available, seconds, evr in solvers do
            if available then
                let diff =
                    match oursEvr, evr with
                    | Some a, Some b when a.Length = b.Length -> List.map2 (fun x y -> abs (x - y)) a b |> List.max
                    | _ -> nan
                let pr =
                    if seconds.Length = oursPca.Length && seconds.Length > 1 then
                        let xs = List.map2 (/) oursPca seconds in $" [{f 2 (List.min xs)}–{f 2 (List.max xs)}]"
                    else ""
                row [ $"PCA k = 50 of {rows}×784 vs scikit-learn '{name}' (s)"; spread 2 oursPca; spread 2 seconds
                      $"{f 2 (oursPcaMed / median seconds)}×{pr}"; "largest explained-variance-ratio difference from ours " + diff.ToString("0.0e+0", inv)
                      "agreement ≤ 1e-4"; verdict (diff <= 1e-4) ]
            else row [ $"PCA vs scikit-learn '{name}'"; ""; "not in this scikit-learn"; ""; ""; ""; "" ]
        match solvers |> List.filter (fun (_, a, _, _) -> a) |> List.sortBy (fun (_, _, s, _) -> median s) with
        | (name, _, seconds, _) :: _ ->
            let m = oursPcaMed / median seconds
            row [ $"PCA vs scikit-learn's fastest ('{name}')"; spread 2 oursPca; spread 2 seconds; $"{f 2 m}×"; ""
                  "≤ 0.5× sklearn's fastest"; verdict (m <= 0.5) ]
        | [] -> ()

        // The 10-epoch run: importance-weighted likelihood, memory, test loss
        match last r "ours.vae-run", last r "torch.vae-run" with
        | Some o, t ->
            let tv key = t |> Option.map (fun t -> num t key) |> Option.defaultValue nan
            row [ $"IW log-likelihood, K = {iwSamples}, {iwRows} test images (s)"; f 1 (num o "iw_s"); f 1 (tv "iw_s")
                  f 2 (num o "iw_s" / tv "iw_s") + "×"
                  $"""−log p(x): ours {f 2 (num o "iw_neg_ll")}, PyTorch {f 2 (tv "iw_neg_ll")} nats"""; "< 60 s"
                  verdict (num o "iw_s" < 60.0) ]
            let rss (o: JsonObject) =
                let xs = floats o["rss_mib"]
                List.head xs, List.last xs, 100.0 * (List.last xs / List.head xs - 1.0)
            let a1, aN, ad = rss o
            let torchRss = t |> Option.map (fun t -> let b1, bN, bd = rss t in $"{f 0 b1} → {f 0 bN} MiB ({signed 1 bd}%%)") |> Option.defaultValue "n/a"
            let managed = floats o["managed_mib"]
            row [ $"RSS after epoch 1 → after epoch {epochs} (MiB)"; $"{f 0 a1} → {f 0 aN} ({signed 1 ad}%%)"; torchRss; ""
                  $"""ours before Fit {f 0 (num o "rss_before_mib")} MiB (data loaded); managed heap {f 0 (List.head managed)} → {f 0 (List.last managed)} MiB"""
                  "within 10% (no growth)"; verdict (ad <= 10.0) ]
            row [ $"Peak RSS (VmHWM) during the {epochs}-epoch VAE run (MiB)"; f 0 (num o "hwm_train_mib"); f 0 (tv "hwm_train_mib"); ""
                  $"""after the IW evaluation too: ours {f 0 (num o "hwm_mib")}, PyTorch {f 0 (tv "hwm_mib")} MiB"""; "< 1024 MiB"
                  verdict (num o "hwm_train_mib" < 1024.0) ]
            let d = num o "test_neg_elbo" - tv "test_neg_elbo"
            row [ $"VAE test −ELBO after {epochs} epochs (nats)"; f 2 (num o "test_neg_elbo"); f 2 (tv "test_neg_elbo"); signed 2 d + " nats"
                  $"""training {f 1 (num o "train_s")} s vs {f 1 (tv "train_s")} s; PyTorch example measured earlier here: 105.7"""
                  "within 1.5 nats of PyTorch"; verdict (abs d <= 1.5) ]
        | None, _ -> row [ "10-epoch VAE run"; "failed"; ""; ""; ""; ""; "" ]

    // The rows of issue 11. A partial epoch's time is scaled to the 60000 training images.
    let fullEpoch key =
        match r.TryGetValue key with
        | true, xs -> [ for o in xs -> num o "epoch_s" * 60000.0 / num o "rows" ]
        | _ -> []
    let ratioOf (xs: float list) (ys: float list) =
        let m = median xs / median ys
        if xs.Length = ys.Length && xs.Length > 1 then
            let pr = List.map2 (/) xs ys
            $"{f 2 m}× [{f 2 (List.min pr)}–{f 2 (List.max pr)}]", m
        else $"{f 2 m}×", m
    let field key name = last r key |> Option.map (fun o -> num o name) |> Option.defaultValue nan
    let ofPeak x = if Double.IsNaN peak then "" else $" ({f 0 (100.0 * x / peak)}%% of sgemm peak)"
    let newEpochRow name key (macs: float list) batch target =
        let oursT, torchT = fullEpoch $"ours.{key}", fullEpoch $"torch.{key}"
        let flops = trainFlops macs 1.0 * 60000.0
        let oursRate, torchRate = flops / median oursT / 1e9, flops / median torchT / 1e9
        let text, m = ratioOf oursT torchT
        let timed = field $"ours.{key}" "rows"
        let partial = if timed < 60000.0 then $"timed on the first {f 0 timed} images of each process and scaled to 60000; " else ""
        row [ $"{name} epoch, 60000 images, batch {batch}, Adam (s)"; spread 2 oursT; spread 2 torchT; text
              $"{partial}{f 1 (flops / 1e9)} useful GFLOP per epoch: ours {f 1 oursRate} GFLOP/s{ofPeak oursRate}, PyTorch {f 1 torchRate} GFLOP/s{ofPeak torchRate}; "
              + $"""after an untimed pass of {f 0 (field $"ours.{key}" "warmup_steps")} minibatches"""
              $"≤ {f 1 target}× PyTorch"; verdict (m <= target) ]
    newEpochRow "Conv VAE 1×28×28, conv 32-64, latent 20" "conv-epoch" convVaeMacs 128 0.8
    match last r "ours.conv-run", last r "torch.conv-run" with
    | Some o, Some t ->
        let d = num o "test_neg_elbo" - num t "test_neg_elbo"
        row [ $"Conv VAE test −ELBO after {epochs} epochs (nats)"; f 2 (num o "test_neg_elbo"); f 2 (num t "test_neg_elbo"); signed 2 d + " nats"
              $"""one run each on grey-level MNIST, one-sample ELBO on the 10000 test images; training {f 1 (num o "train_s")} s vs {f 1 (num t "train_s")} s"""
              "within 1 nat of PyTorch"; verdict (abs d <= 1.0) ]
    | _ -> row [ $"Conv VAE {epochs}-epoch run"; "failed"; ""; ""; ""; ""; "" ]
    let own, fast, torchVae = samples r "ours.own-vae-epoch" "epoch_s", samples r "ours.vae-epoch" "epoch_s", samples r "torch.vae-epoch" "epoch_s"
    let ownText, ownRatio = ratioOf own torchVae
    row [ $"VAE 784-400-20 on own TorchSharp modules (Sequential Linear/ReLU, autograd) epoch, {rows} images, batch 128, Adam (s)"
          spread 2 own; spread 2 torchVae; ownText
          $"{f 2 (median own / median fast)}× our closed-form fast path ({f 2 (median fast)} s); the peer is the VAE row's PyTorch epoch; timed after an untimed pass of {warmupSteps} minibatches"
          "≤ 1.0× PyTorch"; verdict (ownRatio <= 1.0) ]
    newEpochRow "IWAE 784-200-200-50 tanh, K = 5, dynamic binarisation," "iwae-epoch" (iwaeMacs 5) 20 0.8

    sb.AppendLine(table [ "measurement"; "Research (ours)"; "peer"; "ours / peer"; "figures"; "target"; "verdict" ] (List.ofSeq rowsOut)) |> ignore

    // Profile of one VAE step
    let variants =
        [ "profile.ours", "ours (as shipped)"; "profile.ours.mkl-keep", "ours, MKL's AMD path (RESEARCH_MKL_VENDOR_CHECK=keep)"
          "profile.ours.1-thread", "ours, 1 thread"
          "profile.ours.other-wait", $"ours, {otherWait}"
          "profile.torch", "PyTorch 1.13 + OpenBLAS"; "profile.torch.1-thread", "PyTorch, 1 thread"
          "profile.torch.other-wait", $"PyTorch, {otherWait}" ]
        |> List.filter (fun (k, _) -> r.ContainsKey k)
    if not variants.IsEmpty then
        para ("## Where a VAE training step goes (ms per minibatch of 128; phases of each variant's fastest repetition, "
              + "the least disturbed by other load; step total: fastest [slowest] of the repetitions)")
        let fastest key = r[key] |> Seq.minBy (fun o -> num o "step_ms")
        let phase key (name: string) =
            let o: JsonObject = fastest key
            match o["phases_ms"].AsObject().[name] with
            | null -> "—"
            | v -> f 2 (v.GetValue<float>())
        let totals key = [ for o in r[key] -> num o "step_ms" ]
        let phases = [ "select"; "zero_grad"; "forward"; "backward"; "forward+backward"; "item"; "snapshot"; "step"; "accumulate" ]
        para ("Ours: the loss and its gradient are one call (VaeBackprop: the closed-form gradient, no autograd graph), timed as forward+backward; "
              + "the optimiser step writes the new weights into a second buffer (the old one is the divergence snapshot, so no copy is made) and zeroes the gradients in the same pass, so our snapshot row is empty and our zero_grad is a no-op.")
        let body =
            [ for p in phases -> p :: [ for k, _ in variants -> phase k p ] ]
            @ [ "**step total**" :: [ for k, _ in variants -> let xs = totals k in $"{f 2 (List.min xs)} [{f 2 (List.max xs)}]" ]
                "epoch estimate from the fastest (s)" :: [ for k, _ in variants -> f 2 (List.min (totals k) * ceil (float rows / 128.0) / 1000.0) ]
                "Fit's input check, once (s)" :: [ for k, _ in variants -> (if k.StartsWith "profile.ours" then f 3 (num (fastest k) "check_data_s") else "—") ] ]
        sb.AppendLine(table ("phase" :: [ for _, v in variants -> v ]) body) |> ignore
        let sg key = if r.ContainsKey key then f 1 (med key "gflops") else "n/a"
        let mkl = last r "ours.sgemm" |> Option.bind (fun o -> match o["mkl_version"] with null -> None | v -> Some(v.GetValue<string>())) |> Option.defaultValue "MKL"
        para $"""Our sgemm ({n}×{n}, GFLOP/s, {mkl}) as shipped (MKL_CBWR=AUTO,STRICT, feature dispatch on AMD): {sg "ours.sgemm"}; with MKL's own AMD path (RESEARCH_MKL_VENDOR_CHECK=keep): {sg "sgemm.mkl-keep"}; MKL_CBWR empty (CNR off): {sg "sgemm.cbwr-off"}."""
    match last r "profile.ours.conv", last r "profile.torch.conv" with
    | Some o, Some t ->
        para ($"""## Where a conv VAE step goes ({f 0 (num o "threads")} threads; ms per minibatch of 128, each layer alone, median of """
              + $"""{f 0 (num o "steps")} repetitions after 3 warm-up ones; forward without gradients, then forward and backward of the output's sum)""")
        let ol, tl = o["layers_ms"].AsObject(), t["layers_ms"].AsObject()
        let cell (layers: JsonObject) (name: string) (phase: string) =
            match layers[name] with
            | null -> nan
            | l ->
                match (l.[phase]: JsonNode) with
                | null -> nan
                | v -> v.GetValue<float>()
        let body =
            [ for KeyValue(name, _) in ol ->
                let a, b = cell ol name "forward", cell tl name "forward"
                let c, d = cell ol name "forward_backward", cell tl name "forward_backward"
                let dash x = if Double.IsNaN x then "—" else f 2 x
                [ name; f 2 a; f 2 b; dash c; dash d; (if Double.IsNaN(c / d) then "—" else f 2 (c / d) + "×") ] ]
        let total (layers: JsonObject) phase =
            Seq.sum [ for KeyValue(name, _) in ol -> let x = cell layers name phase in if Double.IsNaN x then 0.0 else x ]
        let totals = [ "**sum**"; f 2 (total ol "forward"); f 2 (total tl "forward"); f 2 (total ol "forward_backward")
                       f 2 (total tl "forward_backward"); f 2 (total ol "forward_backward" / total tl "forward_backward") + "×" ]
        sb.AppendLine(
            table [ "layer"; "ours forward"; "PyTorch forward"; "ours forward+backward"; "PyTorch forward+backward"; "ours / PyTorch (forward+backward)" ]
                (body @ [ totals ])) |> ignore
    | _ -> ()
    let memoryVariants =
        [ "memory.backward", "forward + zero_grad + backward through autograd only"
          "memory.fit-step", "the whole step of Vae.Fit (closed-form gradient, flat double buffer, Optimisers.adam)"
          "memory.torch-adam", "forward + backward + TorchSharp's torch.optim.Adam (not used by the library)" ]
        |> List.filter (fun (k, _) -> r.ContainsKey k)
    if not memoryVariants.IsEmpty then
        para "## Resident memory during VAE steps (random data, 6000×784; RSS in MiB every 100 steps)"
        sb.AppendLine(
            table [ "steps of"; "RSS every 100 steps (MiB)"; "growth per 100 steps (MiB)"; "ms per step" ]
                [ for k, name in memoryVariants ->
                    let o = r[k].[r[k].Count - 1]
                    let xs = floats o["rss_mib"]
                    let growth = if xs.Length > 2 then (List.last xs - xs.[1]) / float (xs.Length - 2) else nan
                    [ name; String.Join(" → ", [ for x in xs -> f 0 x ]); f 1 growth; f 2 (num o "ms_per_step") ] ]) |> ignore
    match last r "pca-profile" with
    | Some o ->
        para $"## Where Pca.fit's time goes (seconds, one run on {rows} training rows, k = 50)"
        let ph = o["phases_s"].AsObject()
        sb.AppendLine(table [ "phase"; "seconds" ] [ for KeyValue(k, v) in ph -> [ k; f 3 (v.GetValue<float>()) ] ]) |> ignore
        para ($"""Pca.fit forms the covariance of float32 data in float32 and eigendecomposes it in float64. Against an all-float64 fit of the same data: """
              + $"""largest explained-variance-ratio difference {(num o "max_abs_evr_diff_vs_float64").ToString("0.0e+0", inv)}, """
              + $"""largest relative variance difference {(num o "max_rel_variance_diff_vs_float64").ToString("0.0e+0", inv)}.""")
    | None -> ()
    sb.ToString()

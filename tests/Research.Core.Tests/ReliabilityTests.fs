/// Reliability of the core models: exact state after a divergence or a failing callback, edge inputs,
/// concurrent use, native memory, and soak runs whose tensor count and memory stay flat.
module Research.Core.Tests.ReliabilityTests

open System
open System.Diagnostics
open System.Threading
open Expecto
open TorchSharp
open Research.Core
open Research.Core.Tests.Probes

type Tensor = torch.Tensor

let private vae16 seed =
    new Vae.VariationalAutoencoder({ Vae.defaults 16 2 with HiddenSizes = [ 8 ]; Seed = seed; Device = "cpu" })

/// Everything a user can observe of a trained VAE with fixed seeds, as bit patterns.
type Observation =
    { Weights: (string * int[]) list
      Sample: int[]
      Elbo: int64
      LogLikelihood: int64
      Mean: int[]
      LogVariance: int[] }

let private observe (vae: Vae.VariationalAutoencoder) (probe: Tensor) =
    use s = vae.Sample(8, 5)
    let mu, logVar = vae.Encode probe
    use _m = mu
    use _v = logVar
    { Weights = weightBits vae.Networks
      Sample = bits2D (Interop.toArray2D s)
      Elbo = BitConverter.DoubleToInt64Bits(vae.Elbo(probe, 2, 7))
      LogLikelihood = BitConverter.DoubleToInt64Bits(vae.LogLikelihood(probe, 10, 9))
      Mean = bits2D (Interop.toArray2D mu)
      LogVariance = bits2D (Interop.toArray2D logVar) }

/// The VAE's own training loss (SGVB B, L = 1, β = 1) as an ITrainable that reports each call first.
let private stepwise (vae: Vae.VariationalAutoencoder) (beforeLoss: unit -> unit) =
    let parameters = vae.Networks.Parameters
    let loss generator batch =
        beforeLoss ()
        let t = Estimators.sgvbB generator 1 vae.Model batch
        (t.Kl - t.Reconstruction).mean()
    { new Training.ITrainable with
        member _.Parameters = parameters
        member _.LossAndGradients generator batch = Training.byAutograd loss generator batch
        member _.Evaluate _ = 0.0 }

/// Runs the jobs on their own threads, released together; returns their results and whether they overlapped.
let inParallel (jobs: (unit -> 'T) list) : 'T list * bool =
    let n = jobs.Length
    use start = new Barrier(n)
    let results = Array.zeroCreate<'T> n
    let errors = Array.zeroCreate<exn> n
    let spans = Array.zeroCreate<int64 * int64> n
    let threads =
        jobs |> List.mapi (fun i job ->
            Thread((fun () ->
                start.SignalAndWait()
                let t0 = Stopwatch.GetTimestamp()
                try results.[i] <- job () with e -> errors.[i] <- e
                spans.[i] <- t0, Stopwatch.GetTimestamp()), 16 * 1024 * 1024))
    threads |> List.iter (fun t -> t.Start())
    threads |> List.iter (fun t -> t.Join())
    errors |> Array.iter (fun e -> if not (isNull e) then raise (AggregateException(e)))
    let latestStart = spans |> Array.map fst |> Array.max
    let earliestEnd = spans |> Array.map snd |> Array.min
    List.ofArray results, latestStart < earliestEnd

let private mnist split = fst (Mnist.load (IdxTests.mnistDirectory ()) split)

let divergence =
    testList "divergence" [
        test "after a divergence (full batches, lr 1e6) the VAE scores, samples and encodes exactly as before the failed step" {
            use data = binaryData 21 64 16
            use vae = vae16 21
            // A first, sound Fit, so that the weights at the start of the diverging Fit are not the initial ones.
            vae.Fit(data, { Training.defaults with Epochs = 3; BatchSize = 16; LearningRate = 1e-2 }) |> ignore
            // One full batch per epoch: the loss of epoch e is that of the weights after e − 1 steps,
            // and states.[k] is what the model showed after k steps of this Fit.
            let states = ResizeArray [ observe vae data ]
            let live0 = liveTensors ()
            let ex =
                catch<Training.DivergedException> (fun () ->
                    vae.Fit(data, { Training.defaults with
                                        Epochs = 20; BatchSize = 64; LearningRate = 1e6
                                        Progress = fun _ -> states.Add(observe vae data) }) |> ignore)
            figure "full-batch lr 1e6 diverged at epoch %d, batch %d" ex.epoch ex.batch
            Expect.equal ex.batch 1 "one batch per epoch"
            Expect.isGreaterThanOrEqual ex.epoch 2 "the weights at the start of the Fit score finitely"
            Expect.equal (liveTensors ()) live0 "the failed Fit leaves no tensor behind"
            Expect.isTrue (allFinite vae.Networks) "finite weights"
            // The loss of epoch e was the first non-finite one: the model holds the weights after e − 2 steps.
            let expected = states.[ex.epoch - 2]
            let actual = observe vae data
            Expect.equal actual.Weights expected.Weights "the weights are bit-identical to those before the failed step"
            Expect.equal actual expected "Sample, Elbo, LogLikelihood and Encode are bit-identical"
            Expect.isTrue (Double.IsFinite(BitConverter.Int64BitsToDouble actual.Elbo)) "the ELBO is finite"
            // And the model trains on afterwards.
            let h = vae.Fit(data, { Training.defaults with Epochs = 2; BatchSize = 16 })
            Expect.isTrue (h |> List.forall (fun r -> Double.IsFinite r.TrainLoss)) "a later Fit trains"
        }
        test "after a divergence at a later minibatch the weights are those of the last finite loss, bit for bit" {
            // Each Loss call records what the model showed at that step, so the expected state is known
            // whichever batch fails: lr 1e6 fails at the second step; a row of NaN (put past the checks of
            // Fit, straight into the trainer) placed where the seeded order reaches it at the sixth step.
            let batch, seed = 8, 3
            let sixth =
                use g = new torch.Generator(uint64 seed)
                use order = torch.randperm(64L, generator = g)
                order.[5L * int64 batch].item<int64> ()
            for lr, poisoned, failingStep in [ 1e6, None, 2; 1e-2, Some sixth, 6 ] do
                use data = binaryData 22 64 16
                poisoned |> Option.iter (fun row -> use r = data.[row] in r.fill_((nan).ToScalar()) |> ignore)
                use vae = vae16 22
                use clean = binaryData 22 64 16
                vae.Fit(clean, { Training.defaults with Epochs = 2; BatchSize = 16; LearningRate = 1e-2 }) |> ignore
                let seen = ResizeArray<Observation>()
                let model = stepwise vae (fun () -> seen.Add(observe vae clean))
                let live0 = liveTensors ()
                let config = { Training.defaults with Epochs = 5; BatchSize = batch; LearningRate = lr; Seed = seed }
                let ex = catch<Training.DivergedException> (fun () -> Training.fit model data config |> ignore)
                figure "lr %g, poisoned row %A: diverged at epoch %d, batch %d (step %d)" lr poisoned ex.epoch ex.batch seen.Count
                Expect.equal (liveTensors ()) live0 "no tensor left behind"
                Expect.equal (ex.epoch, ex.batch) (1, failingStep) "the failing step is named"
                Expect.equal seen.Count failingStep "the trainer stopped at the failing step"
                // seen.[k] was observed before the loss of step k + 1: the last one failed, the one before did not.
                Expect.equal (observe vae clean) seen.[failingStep - 2] $"lr {lr}: bit-identical to the state of the last finite loss"
                if failingStep > 2 then
                    Expect.notEqual seen.[failingStep - 2].Weights seen.[0].Weights "not simply the weights at the start of the Fit"
        }
    ]

let progressThrows =
    testList "progress callback" [
        test "an exception from Progress propagates, the model keeps that epoch's weights, and Fit can run again" {
            use data = binaryData 23 200 16
            use vae = vae16 23
            let config = { Training.defaults with Epochs = 5; BatchSize = 32; Seed = 4 }
            let boom = ApplicationException "the callback failed"
            let mutable atThrow = None
            let live0 = liveTensors ()
            let ex =
                catch<ApplicationException> (fun () ->
                    vae.Fit(data, { config with Progress = fun r -> if r.Epoch = 2 then atThrow <- Some(weightBits vae.Networks); raise boom }) |> ignore)
            Expect.isTrue (obj.ReferenceEquals(ex, boom)) "the callback's own exception, not a wrapper"
            Expect.equal (liveTensors ()) live0 "the interrupted Fit leaves no tensor behind"
            Expect.isTrue (allFinite vae.Networks) "finite weights"
            Expect.equal (weightBits vae.Networks) atThrow.Value "the weights at the end of epoch 2"
            // The same as a model that trained exactly two epochs without a callback.
            use reference = vae16 23
            reference.Fit(data, { config with Epochs = 2 }) |> ignore
            Expect.equal (weightBits vae.Networks) (weightBits reference.Networks) "as if training had stopped after epoch 2"
            // The one-Fit guard was released: a later Fit runs, and leaves both models in step.
            let h1 = vae.Fit(data, config)
            let h2 = reference.Fit(data, config)
            Expect.equal (historyBits h1) (historyBits h2) "a later Fit runs normally"
            Expect.equal (weightBits vae.Networks) (weightBits reference.Networks) "and identically"
        }
        test "an exception from Progress while a validation set is scored also leaves no tensor behind" {
            use data = binaryData 24 100 16
            use valid = binaryData 25 30 16
            use ae = new Autoencoder.Autoencoder({ InputSize = 16; LatentSize = 3; HiddenSizes = [ 8 ]; Linear = false; Activation = Mlp.ReLU; Init = Mlp.Uniform; Convolutional = None; Seed = 1; Device = "cpu" })
            let live0 = liveTensors ()
            catch<OperationCanceledException> (fun () ->
                ae.Fit(data, { Training.defaults with Epochs = 3; Validation = Some valid; Progress = fun _ -> raise (OperationCanceledException()) }) |> ignore)
            |> ignore
            Expect.equal (liveTensors ()) live0 "no tensor left behind"
            Expect.hasLength (ae.Fit(data, { Training.defaults with Epochs = 1 })) 1 "Fit runs again"
        }
    ]

let edges =
    testList "edge inputs" [
        test "a single example trains and scores (VAE and AE, batch 1 and 128)" {
            use x = binaryData 26 1 16
            for batch in [ 1; 128 ] do
                use vae = vae16 26
                let h = vae.Fit(x, { Training.defaults with Epochs = 3; BatchSize = batch; Validation = Some x })
                Expect.equal (h |> List.map (fun r -> r.ExamplesSeen)) [ 1L; 2L; 3L ] "one example per epoch"
                Expect.isTrue (h |> List.forall (fun r -> Double.IsFinite r.TrainLoss && Double.IsFinite r.ValidationLoss.Value)) "finite losses"
                Expect.isTrue (Double.IsFinite(vae.Elbo(x, 1, 0)) && Double.IsFinite(vae.LogLikelihood(x, 5, 0))) "finite scores"
                use ae = new Autoencoder.Autoencoder({ InputSize = 16; LatentSize = 2; HiddenSizes = []; Linear = false; Activation = Mlp.ReLU; Init = Mlp.Uniform; Convolutional = None; Seed = 1; Device = "cpu" })
                ae.Fit(x, { Training.defaults with Epochs = 2; BatchSize = batch }) |> ignore
                Expect.isTrue (Double.IsFinite(ae.ReconstructionError x)) "AE scores"
        }
        test "all-zero and all-one images: a Bernoulli VAE trains, and its ELBO and log-likelihood stay finite and ≤ 0" {
            for value in [ 0.0f; 1.0f ] do
                use x = torch.full([| 64L; 16L |], value.ToScalar())
                use vae = vae16 27
                let h = vae.Fit(x, { Training.defaults with Epochs = 30; BatchSize = 16; LearningRate = 1e-2 })
                let first, last = h.Head.TrainLoss, (List.last h).TrainLoss
                figure "constant %g images: −ELBO %.4f → %.4f nats" value first last
                Expect.isTrue (h |> List.forall (fun r -> Double.IsFinite r.TrainLoss)) "finite losses"
                Expect.isLessThan last (first / 4.0) "the loss falls towards 0"
                let elbo, ll = vae.Elbo(x, 4, 1), vae.LogLikelihood(x, 50, 1)
                Expect.isTrue (Double.IsFinite elbo && elbo <= 0.0) $"ELBO {elbo} finite, ≤ 0"
                Expect.isTrue (Double.IsFinite ll && ll <= 0.0 && ll >= elbo - 1.0) $"log p(x) ≈ {ll} finite, ≤ 0, ≥ ELBO − 1"
                use r = vae.Reconstruct x
                use dev = (r - value).abs().max()
                Expect.isLessThan (dev.item<float32> ()) 0.5f "reconstructions lean towards the constant"
        }
        test "log-variances of ±50 give a finite KL and finite gradients (float32, batches of 1000 dimensions)" {
            use mu = torch.tensor([| -1000.0f; 0.0f; 1000.0f |]).repeat(2L, 334L).narrow(1L, 0L, 1000L).requires_grad_(true)
            // Row 0 has log σ² = −50 in every dimension, row 1 has +50; μ cycles through −1000, 0, 1000.
            use logVar = torch.tensor([| -50.0f; 50.0f |]).reshape(2L, 1L).expand(2L, 1000L).contiguous().requires_grad_(true)
            use kl = Gaussian.klToStandardNormal mu logVar
            use total = kl.sum()
            total.backward()
            let k = Interop.toArray kl
            // ½ Σ (σ² + μ² − log σ² − 1): 1000 dimensions, μ² summing to 667·10⁶.
            let expected lv = 0.5 * (1000.0 * (exp lv - lv - 1.0) + 667e6)
            for v, lv in Array.zip k [| -50.0; 50.0 |] do
                Expect.isTrue (Single.IsFinite v) $"KL {v} finite"
                Expect.floatClose Accuracy.single (float v) (expected lv) $"KL at log σ² = {lv} matches the closed form"
            for g in [ mu.grad; logVar.grad ] do
                use g = g
                use ok = torch.isfinite(g).all()
                Expect.isTrue (ok.item<bool> ()) "finite gradients"
        }
        test "a Bernoulli VAE names the first NaN, infinity or value outside [0, 1], and PPCA refuses a bad latent size before any work" {
            use vae = vae16 29
            let message (row: int64) (col: int64) (value: float32) =
                use x = binaryData 29 5 16
                x.[row, col] <- torch.tensor(value)
                (Expect.throwsC (fun () -> vae.Fit(x, Training.defaults) |> ignore) id : exn).Message
            for bad in [ Single.NaN; Single.PositiveInfinity; Single.NegativeInfinity ] do
                let m = message 3L 7L bad
                Expect.stringContains m "NaN or infinity (first at row 3, column 7)" $"{bad}: {m}"
            for bad in [ -0.5f; 1.5f ] do
                let m = message 2L 11L bad
                Expect.stringContains m "must lie in [0, 1]" $"{bad}: {m}"
                Expect.stringContains m "row 2, column 11" $"{bad}: {m}"
            use edge = binaryData 29 5 16
            vae.CheckData("data", edge) // 0 and 1 themselves are accepted
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> ProbabilisticPca.fit edge 16 |> ignore) "latent ≥ min(n − 1, P)"
        }
        test "latent size larger than the input is refused (VAE and AE), equal is accepted" {
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> new Vae.VariationalAutoencoder(Vae.defaults 4 5) |> ignore) "VAE"
            Expect.throwsT<ArgumentOutOfRangeException>
                (fun () -> new Autoencoder.Autoencoder({ InputSize = 4; LatentSize = 5; HiddenSizes = []; Linear = true; Activation = Mlp.ReLU; Init = Mlp.Uniform; Convolutional = None; Seed = 0; Device = "cpu" }) |> ignore) "AE"
            use ok = new Vae.VariationalAutoencoder({ Vae.defaults 4 4 with HiddenSizes = []; Device = "cpu" })
            use x = binaryData 28 10 4
            ok.Fit(x, { Training.defaults with Epochs = 1 }) |> ignore
        }
    ]

let concurrency =
    testList "concurrency" [
        test "two models trained on two threads at once match the same two trained one after the other, bit for bit" {
            use dataA = binaryData 31 1024 784
            use g = new torch.Generator(32UL)
            use dataB = torch.rand([| 1024L; 784L |], generator = g)
            let jobA () =
                use vae = new Vae.VariationalAutoencoder({ Vae.defaults 784 16 with HiddenSizes = [ 128 ]; Seed = 1; Device = "cpu" })
                let h = vae.Fit(dataA, { Training.defaults with Epochs = 3; BatchSize = 64; Seed = 5 })
                historyBits h, weightBits vae.Networks
            let jobB () =
                use ae = new Autoencoder.Autoencoder({ InputSize = 784; LatentSize = 16; HiddenSizes = [ 128 ]; Linear = false; Activation = Mlp.ReLU; Init = Mlp.Uniform; Convolutional = None; Seed = 2; Device = "cpu" })
                let h = ae.Fit(dataB, { Training.defaults with Epochs = 3; BatchSize = 32; Optimizer = Training.Adagrad; LearningRate = 1e-2; Seed = 6 })
                historyBits h, weightBits ae.Networks
            let clock = Stopwatch.StartNew()
            let a1 = jobA ()
            let b1 = jobB ()
            let sequential = clock.Elapsed.TotalSeconds
            clock.Restart()
            let results, overlapped = inParallel [ jobA; jobB ]
            figure "two Fits one after the other %.2f s, on two threads %.2f s, overlapped: %b" sequential clock.Elapsed.TotalSeconds overlapped
            Expect.isTrue overlapped "the two Fits ran at the same time"
            Expect.equal results.[0] a1 "the VAE's history and weights"
            Expect.equal results.[1] b1 "the autoencoder's history and weights"
        }
        test "inference on one model from four threads at once gives the single-threaded results, bit for bit" {
            use data = binaryData 33 300 64
            use vae = new Vae.VariationalAutoencoder({ Vae.defaults 64 4 with HiddenSizes = [ 32 ]; Seed = 3; Device = "cpu" })
            vae.Fit(data, { Training.defaults with Epochs = 2; BatchSize = 50 }) |> ignore
            use ae = new Autoencoder.Autoencoder({ InputSize = 64; LatentSize = 4; HiddenSizes = [ 32 ]; Linear = false; Activation = Mlp.ReLU; Init = Mlp.Uniform; Convolutional = None; Seed = 3; Device = "cpu" })
            ae.Fit(data, { Training.defaults with Epochs = 2; BatchSize = 50 }) |> ignore
            let run () =
                [ for round in 1 .. 3 do
                    let o = observe vae data
                    use r = vae.Reconstruct data
                    use z = ae.Encode data
                    use d = ae.Decode z
                    yield o, bits2D (Interop.toArray2D r), bits2D (Interop.toArray2D d), BitConverter.DoubleToInt64Bits(ae.ReconstructionError data) ]
            let reference = run ()
            let results, overlapped = inParallel [ run; run; run; run ]
            Expect.isTrue overlapped "the calls ran at the same time"
            for r in results do Expect.equal r reference "identical to the single-threaded results"
        }
        test "torch.set_num_threads is process-wide (docs/reliability.md relies on it)" {
            Native.ensureLoaded ()
            let before = torch.get_num_threads ()
            let wanted = if before = 1 then 2 else 1
            try
                torch.set_num_threads wanted
                let (seen: int list), _ = inParallel [ fun () -> torch.get_num_threads () ]
                Expect.equal seen [ wanted ] "another thread sees the new count"
            finally
                torch.set_num_threads before
        }
    ]

/// Live tensors on this thread that `f` adds, once its results are disposed.
let private leakedBy (f: unit -> unit) =
    let before = liveTensors ()
    f ()
    liveTensors () - before

let leaks =
    testList "tensor leaks" [
        test "no public method of the core VAE or AE leaves a tensor behind" {
            use x = binaryData 42 100 16
            use valid = binaryData 43 20 16
            let dir = IO.Directory.CreateTempSubdirectory("research-leaks-")
            try
                let vaePath, aePath = IO.Path.Combine(dir.FullName, "vae"), IO.Path.Combine(dir.FullName, "ae")
                let vaeConfig = { Vae.defaults 16 2 with HiddenSizes = [ 8 ]; Device = "cpu" }
                let aeConfig : Autoencoder.AutoencoderConfig = { InputSize = 16; LatentSize = 2; HiddenSizes = [ 8 ]; Linear = false; Activation = Mlp.ReLU; Init = Mlp.Uniform; Convolutional = None; Seed = 0; Device = "cpu" }
                use vae = new Vae.VariationalAutoencoder(vaeConfig)
                use gaussian = new Vae.VariationalAutoencoder({ vaeConfig with Likelihood = Vae.Gaussian })
                use ae = new Autoencoder.Autoencoder(aeConfig)
                let fit = { Training.defaults with Epochs = 2; BatchSize = 32; Validation = Some valid }
                let calls : (string * (unit -> unit)) list =
                    [ "VAE constructor + Dispose", (fun () -> (new Vae.VariationalAutoencoder(vaeConfig) :> IDisposable).Dispose())
                      "VAE Fit", (fun () -> vae.Fit(x, fit) |> ignore)
                      "VAE Fit (Gaussian)", (fun () -> gaussian.Fit(x, fit) |> ignore)
                      "VAE Encode", (fun () -> let m, v = vae.Encode x in m.Dispose(); v.Dispose())
                      "VAE Decode", (fun () -> use z = torch.zeros(3L, 2L) in (vae.Decode z).Dispose())
                      "VAE Decode (Gaussian)", (fun () -> use z = torch.zeros(3L, 2L) in (gaussian.Decode z).Dispose())
                      "VAE Reconstruct", (fun () -> (vae.Reconstruct x).Dispose())
                      "VAE Sample", (fun () -> (vae.Sample(5, 1)).Dispose())
                      "VAE Elbo", (fun () -> vae.Elbo(x, 2, 1) |> ignore)
                      "VAE LogLikelihood", (fun () -> vae.LogLikelihood(x, 7, 1) |> ignore)
                      "VAE save", (fun () -> Vae.save vaePath vae)
                      "VAE load + Dispose", (fun () -> (Vae.load vaePath "cpu" :> IDisposable).Dispose())
                      "AE constructor + Dispose", (fun () -> (new Autoencoder.Autoencoder(aeConfig) :> IDisposable).Dispose())
                      "AE Fit", (fun () -> ae.Fit(x, fit) |> ignore)
                      "AE Encode", (fun () -> (ae.Encode x).Dispose())
                      "AE Decode", (fun () -> use z = torch.zeros(3L, 2L) in (ae.Decode z).Dispose())
                      "AE Reconstruct", (fun () -> (ae.Reconstruct x).Dispose())
                      "AE ReconstructionError", (fun () -> ae.ReconstructionError x |> ignore)
                      "AE save", (fun () -> Autoencoder.save aePath ae)
                      "AE load + Dispose", (fun () -> (Autoencoder.load aePath "cpu" :> IDisposable).Dispose())
                      "Interop.toArray2D", (fun () -> Interop.toArray2D x |> ignore)
                      "Interop.toArray", (fun () -> use r = x.[0L] in Interop.toArray r |> ignore) ]
                let leaked = [ for name, f in calls do
                                 f () // the first call may create lasting state (none is expected)
                                 let n = leakedBy f
                                 if n <> 0L then yield name, n ]
                figure "tensors left behind per call: %A" leaked
                Expect.isEmpty leaked "tensors left behind by one call (name, count)"
            finally
                dir.Delete true
        }
    ]

let memory =
    testList "native memory" [
        test "Dispose gives back the native memory of trained models (native heap and RSS back near the baseline)" {
            if not canMeasureHeap.Value then failtest "this measurement needs glibc's mallinfo2 (Linux)"
            let config = { Vae.defaults 784 20 with HiddenSizes = [ 4000 ]; Device = "cpu" }
            use x = binaryData 41 128 784
            let train () =
                let vae = new Vae.VariationalAutoencoder(config)
                vae.Fit(x, { Training.defaults with Epochs = 1; BatchSize = 64 }) |> ignore
                vae
            // Warm up: MKL's and libtorch's one-time buffers are not the models' memory.
            (train () :> IDisposable).Dispose()
            settle ()
            let heap0, rss0 = nativeHeapBytes (), residentBytes ()
            let models = [ for _ in 1 .. 3 -> train () ]
            let parameterBytes =
                models |> List.sumBy (fun m -> m.Networks.Parameters |> List.sumBy (fun p -> p.numel () * 4L))
            let heap1, rss1 = nativeHeapBytes (), residentBytes ()
            for m in models do (m :> IDisposable).Dispose()
            // No GC here: Dispose alone must free the memory (a tensor left to the finalizer would still hold it).
            let heap2, rss2 = nativeHeapBytes (), residentBytes ()
            figure "3 trained VAEs 784-4000-20: parameters %.1f MiB; native heap %+.1f MiB after creating, %+.2f MiB after Dispose; RSS %+.1f MiB, %+.1f MiB (falls by %.1f MiB on Dispose)"
                (float parameterBytes / MiB) (float (heap1 - heap0) / MiB) (float (heap2 - heap0) / MiB)
                (float (rss1 - rss0) / MiB) (float (rss2 - rss0) / MiB) (float (rss1 - rss2) / MiB)
            // Parameters are held while the models live, and their gradients are freed when Fit returns …
            Expect.isGreaterThan (heap1 - heap0) (parameterBytes * 9L / 10L) "the parameters are on the native heap"
            Expect.isLessThan (heap1 - heap0) (parameterBytes * 15L / 10L) "the gradients were freed when Fit returned"
            // … and given back by Dispose, to the heap and to the system. The models are large (75 MiB of weights
            // in all) so that half of them stands well above RSS's noise. (RSS alone is noisy by ±25 MiB here:
            // the GC commits and decommits its own memory; so the drop on Dispose is what is compared.)
            // Within 10% of the parameters: one leaked model of the three would be 33%, and one-off buffers of
            // libtorch and MKL (about 2 MB seen after the full suite) stay below that.
            Expect.isLessThan (heap2 - heap0) (parameterBytes / 10L) "the native heap is back within 10% of the parameters"
            // RSS is the noisy side: this VM's kernel reclaims idle pages on its own (kdamond), so part of the
            // weights may already be out of RSS before Dispose. Measured falls: 100% of the bytes freed in most
            // runs, 70% in the first run of a fresh clone; 60% still shows that the memory went back.
            Expect.isGreaterThan (rss1 - rss2) ((heap1 - heap2) * 6L / 10L) "RSS falls by at least 60% of the bytes freed"
            Expect.isLessThan (rss2 - rss0) (parameterBytes / 2L) "RSS is back near the baseline"
        }
    ]

/// Trains a small MNIST VAE and checks, after each epoch, the live tensors of this thread, the native heap
/// and RSS: tensors exactly flat; heap and RSS, after a full GC, bounded and flat in the second half.
let private soak (images: int) (epochs: int) =
    // Training images from the test split for short runs (it loads faster), else from the training split;
    // the validation set is always the test split's last 500.
    use test = mnist Mnist.Test
    use source = if images <= 9500 then test.alias () else mnist Mnist.Train
    use x = source.narrow(0L, 0L, int64 images)
    use valid = test.narrow(0L, 9500L, 500L)
    use vae = new Vae.VariationalAutoencoder({ Vae.defaults 784 8 with HiddenSizes = [ 64 ]; Seed = 1; Device = "cpu" })
    let live, heap, heapBeforeGc, rss = ResizeArray<int64>(), ResizeArray<int64>(), ResizeArray<int64>(), ResizeArray<int64>()
    let mutable settling = 0.0
    let measure _ =
        live.Add(liveTensors ())
        heapBeforeGc.Add(nativeHeapBytes ())
        // TorchSharp's optimisers make Scalar objects at every step and leave them to the finalizer: their few
        // KiB of native memory per minibatch come back at the next GC, so the heap is compared after one.
        let t0 = Stopwatch.GetTimestamp()
        settle ()
        settling <- settling + Stopwatch.GetElapsedTime(t0).TotalSeconds
        heap.Add(nativeHeapBytes ())
        rss.Add(residentBytes ())
    let clock = Stopwatch.StartNew()
    let h = vae.Fit(x, { Training.defaults with Epochs = epochs; BatchSize = 100; Validation = Some valid; Progress = measure })
    let seconds = clock.Elapsed.TotalSeconds
    Expect.hasLength h epochs "every epoch ran"
    Expect.isTrue (h |> List.forall (fun r -> Double.IsFinite r.TrainLoss)) "finite losses"
    let last = epochs - 1
    let median (a: int64[]) = (Array.sort a).[a.Length / 2]
    // The median change per epoch over the second half: a leak shows in every epoch, a one-off jump does not.
    let perEpoch (series: ResizeArray<int64>) = median [| for e in epochs / 2 .. last -> series.[e] - series.[e - 1] |]
    let kib (b: int64) = float b / 1024.0
    figure "soak %d images × %d epochs (%d minibatches of 100) in %.1f s (%.1f s of it in GCs): live tensors %d at epoch 2, %d at epoch %d"
        images epochs (epochs * images / 100) seconds settling live.[1] live.[last] epochs
    figure "  native heap after GC %+.0f KiB from epoch 2 to %d (median %+.1f KiB per epoch in the second half); during an epoch, before its GC, %+.1f KiB"
        (kib (heap.[last] - heap.[1])) epochs (kib (perEpoch heap))
        (kib (median [| for e in epochs / 2 .. last -> heapBeforeGc.[e] - heap.[e - 1] |]))
    figure "  RSS %+.0f KiB from epoch 2 to %d (median %+.1f KiB per epoch)" (kib (rss.[last] - rss.[1])) epochs (kib (perEpoch rss))
    Expect.equal live.[last] live.[1] "live tensors at the last epoch equal those at epoch 2"
    Expect.sequenceEqual live (Seq.replicate epochs live.[0]) "and at every epoch"
    // 16 KiB per epoch is 800 bytes per minibatch, below any tensor of this model (the smallest per-step one,
    // the 100×8 codes, is 3.2 KB, i.e. 64 KiB per epoch). MKL's AVX-512 kernels keep per-thread buffers
    // whose total wanders by a few KiB between epochs (medians of 0–11 KiB measured), hence not 8 KiB.
    Expect.isLessThanOrEqual (perEpoch heap) 16384L "the native heap does not grow from epoch to epoch (median ≤ 16 KiB)"
    Expect.isLessThan (heap.[last] - heap.[1]) (8L <<< 20) "the native heap grows by less than 8 MiB in all"
    Expect.isLessThan (rss.[last] - rss.[1]) (24L <<< 20) "RSS grows by less than 24 MiB in all"

/// The long soak exists only in long mode (RESEARCH_LONG_TESTS=1), so the default suite neither runs
/// nor skips it.
let soakTests =
    testList "soak" [
        test "20 epochs on 2000 MNIST images: live tensors flat, native heap and RSS bounded" {
            soak 2000 20
        }
        if Environment.GetEnvironmentVariable "RESEARCH_LONG_TESTS" = "1" then
            test "50 epochs on 10000 MNIST images (long mode)" {
                soak 10000 50
            }
    ]

let tests =
    testList "Reliability" [ divergence; progressThrows; edges; concurrency; leaks; memory; soakTests ]

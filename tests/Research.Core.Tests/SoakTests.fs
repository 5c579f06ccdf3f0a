/// Hours-long runs in miniature: nothing accumulates over hundreds of epochs of resumable training. The
/// default suite runs 200 epochs (seconds); the long-test set (`dotnet fsi build.fsx test-long`) 3000.
module Research.Core.Tests.SoakTests

open System
open System.IO
open Expecto
open TorchSharp
open Research.Core

/// 1000 rows of 64 pixels in [0, 1] from a seeded generator.
let private data () =
    use g = new torch.Generator(11UL)
    torch.rand([| 1000L; 64L |], generator = g)

let private soak (epochs: int) =
        test $"a VAE trained for {epochs} epochs with a run checkpoint after each keeps a flat RSS and native heap" {
            let dir = Directory.CreateTempSubdirectory("research-soak-")
            try
                use x = data ()
                use vae = new Vae.VariationalAutoencoder({ Vae.defaults 64 8 with HiddenSizes = [ 64 ] })
                let rss = Collections.Generic.List<float>()
                let heap = Collections.Generic.List<float>()
                let progress (r: Training.EpochReport) =
                    if r.Epoch % 10 = 0 || r.Epoch = 1 then
                        Probes.settle ()
                        rss.Add(float (Probes.residentBytes ()) / Probes.MiB)
                        if Probes.canMeasureHeap.Value then heap.Add(float (Probes.nativeHeapBytes ()) / Probes.MiB)
                let path = Path.Combine(dir.FullName, "soak.checkpoint")
                let config = { Training.defaults with Epochs = epochs; BatchSize = 100; CheckpointPath = Some path; Progress = progress }
                let history = vae.Fit(x, config)
                Expect.equal history.Length epochs "every epoch ran"
                Expect.isTrue (File.Exists path) "the run checkpoint stays after the run"
                // Epoch 10 is the baseline: by then the allocator and the JIT have settled.
                let baseline = rss.[1]
                let worst = Seq.max (Seq.skip 1 rss)
                printfn "soak: RSS after epoch 1 %.0f MiB, epoch 10 %.0f MiB, largest later %.0f MiB, after epoch %d %.0f MiB" rss.[0] baseline worst epochs (Seq.last rss)
                Expect.isLessThan worst (baseline * 1.10) "RSS stays within 10% of its level after epoch 10"
                if heap.Count > 0 then
                    let h10, hMax = heap.[1], Seq.max (Seq.skip 1 heap)
                    printfn "soak: native heap after epoch 10 %.1f MiB, largest later %.1f MiB" h10 hMax
                    Expect.isLessThan hMax (h10 + 8.0) "the native heap does not grow with the epochs"
            finally
                dir.Delete true
        }

/// The soak of the default suite.
let tests = testList "Soak" [ soak 200 ]

/// The soak of the long-test set.
let longTests = testList "Soak" [ soak 3000 ]
